"""The `batchrun` command: turns each command's flags into checked options, hands them to a stage, prints
its result, prints one line per error, returns exit codes.

Nothing imports this module. Logging is configured here and only here, from -v / -q.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import sys
import traceback
from pathlib import Path

from . import __version__
from .errors import EXIT_INTERRUPTED, EXIT_USAGE, BatchrunError, UsageError
from .simulator import SIMULATE_DETAILS

log = logging.getLogger("batchrun")

EXIT_CODES = """exit codes:
  0 every row ok   2 bad spec or usage   3 finished with failures (run again)   4 budget reached
  5 deadline reached   6 authentication / permission   7 quota exhausted
  8 finished, some rows blocked or invalid   9 another run or plan is writing the output folder
  10 write error (disk full, read-only)   11 configuration error (first replies all 400/404)
  12 billing (prepaid credit used up)
  13 batches still running at the server: run again later, or use --wait   130 interrupted"""

TIER_HELP = ("standard, flex (half price, answers in up to 15 min; requests time out after 900 s unless "
             "limits.timeout_s says otherwise), batch (half price, Gemini Batch Mode: answers within 24 h; each "
             "run submits what is pending and collects what is done, exit 13 while batches run) or priority "
             "(about 1.8x, for billing tiers that offer it); overrides the spec's tier:")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose, args.quiet)
    try:
        return args.handler(args) or 0
    except BatchrunError as exc:
        if args.verbose:
            traceback.print_exc()
        print(f"batchrun: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("batchrun: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `batchrun plan --show 5 | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _configure_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batchrun",
        description="Run bulk generation jobs (Gemini generateContent, CometAPI) from YAML specs.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"batchrun {__version__}")
    # -v / -q are accepted before or after the command; SUPPRESS keeps a sub-command from resetting them
    common = argparse.ArgumentParser(add_help=False)
    for target, default in ((common, argparse.SUPPRESS), (parser, None)):
        target.add_argument("-v", "--verbose", action="count", default=default if default else 0,
                            help="more log lines; tracebacks on errors")
        target.add_argument("-q", "--quiet", action="store_true", default=default if default else False,
                            help="warnings and errors only")

    def show_help(_args: argparse.Namespace) -> int:
        parser.print_help()
        return EXIT_USAGE

    parser.set_defaults(handler=show_help)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    _add_plan(commands, common)
    _add_run(commands, common)
    _add_status(commands, common)
    _add_report(commands, common)
    _add_estimate(commands, common)
    _add_redo(commands, common)
    _add_simulate(commands, common)
    _add_export(commands, common)
    _add_schedule(commands, common)
    return parser


def _command(commands, common, name: str, help_text: str, details: str = "") -> argparse.ArgumentParser:
    return commands.add_parser(
        name, parents=[common], help=help_text, description=help_text + (f"\n\n{details}" if details else ""),
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _add_plan(commands, common) -> None:
    p = _command(commands, common, "plan", "Validate a job spec and write its request manifest.",
                 "Holds the output folder's lock while it writes: exits 9 while another run or plan does.")
    p.add_argument("spec", type=Path, help="the job spec, e.g. jobs/demo.yaml")
    _add_output_dir(p)
    p.add_argument("--show", type=int, default=0, metavar="N", help="print the first N fully rendered requests")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    _add_input_flags(p)
    p.set_defaults(handler=cmd_plan)


def _add_output_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output-dir", metavar="DIR",
                   help="keep the job's output folder in DIR/NAME (NAME: the last part of output.dir, else the "
                        "spec's name) instead of beside the spec's project; overrides $BATCHRUN_OUTPUT_DIR")


def _add_input_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--refresh", action="store_true",
                   help="ask the servers again about photos by URL already in the input cache (If-None-Match / "
                        "If-Modified-Since; an unchanged photo is not downloaded again); with run, plan again first")
    p.add_argument("--skip-bad-inputs", action="store_true",
                   help="plan the rows whose input photos are good and leave out the others (a URL that fails, a "
                        "missing or unreadable file), listed in the summary and in OUTPUT/skipped_inputs.csv")


def _add_run(commands, common) -> None:
    p = _command(commands, common, "run", "Send the job's pending requests; resumes where the last run stopped.",
                 "Holds the output folder's lock from planning to the end: a second run or plan exits 9.\n"
                 "The budget counts every result's cost, also of results no longer in the manifest.")
    p.add_argument("spec", type=Path, help="the job spec, e.g. jobs/demo.yaml")
    _add_output_dir(p)
    _add_run_flags(p)
    p.set_defaults(handler=cmd_run)


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--until", metavar="HH:MM", help="stop sending at this local time (deadline, exit 5)")
    p.add_argument("--max-duration", metavar="DURATION", help="stop sending after this long, e.g. 90s, 45m, 7h")
    p.add_argument("--wait-quota", action="store_true",
                   help="when a daily quota is spent, park until it resets and go on, if that comes before "
                        "--until / --max-duration (else exit 7); also the spec's run.wait_quota: true")
    p.add_argument("--max-cost", type=float, metavar="USD", help="budget cap for this job (overrides budget.max_cost_usd)")
    p.add_argument("--max-cost-from-projection", choices=["expected", "high"],
                   help="cap the whole job's cost at the pilot's projection (projection.json, from `estimate "
                        "--pilot N`): its expected figure or the top of its 90%% interval; --max-cost stays the "
                        "hard cap and wins when lower (overrides budget.max_cost_from_projection)")
    p.add_argument("--prices", type=Path, metavar="FILE", help="price overrides (YAML or JSON: model -> rates)")
    p.add_argument("--no-retry-failed", action="store_true", help="do not send again requests a past run recorded as failed")
    p.add_argument("--take-over", action="store_true",
                   help="a job in a bucket (output.dir: s3://...): run even when another machine's lease on it "
                        "is fresh (that machine is gone); without it such a run exits 9")
    p.add_argument("--retry", metavar="STATUSES", help="also send again rows recorded invalid and/or blocked, e.g. --retry invalid,blocked")
    p.add_argument("--no-config-check", action="store_true",
                   help="record 400/404 replies as invalid even when the first replies all get one "
                        "(by default that stops the run, exit 11)")
    p.add_argument("--write-wait", type=float, default=120.0, metavar="SECONDS",
                   help="after a write error (disk full), how long to wait for space to save the replies that arrived")
    p.add_argument("--concurrency", type=int, metavar="N", help="override limits.concurrency")
    p.add_argument("--ray", metavar="auto|local:N",
                   help="send on a Ray cluster: auto joins the one RAY_ADDRESS names, local:N starts one of N worker "
                        "processes; the job's limits hold for the whole cluster (needs pip install 'batchrun[ray]')")
    p.add_argument("--tier", metavar="TIER", help=TIER_HELP)
    p.add_argument("--wait", action="store_true",
                   help="at the batch tier, poll until every batch is done (or --until / --max-duration) "
                        "instead of exiting 13 while batches run")
    p.add_argument("--fallback", metavar="TIER",
                   help="at the batch tier, flex or standard: a batch unfinished after --batch-timeout, or at "
                        "--until (with --wait), is cancelled, what it answered is kept, and its other requests are "
                        "sent at this tier in the same run, not stopped by --until; --max-duration stays a hard "
                        "bound on the whole run, and a batch unfinished only then keeps running (exit 13); "
                        "overrides batch.fallback")
    p.add_argument("--batch-timeout", metavar="DURATION",
                   help="with --fallback, give up on a batch this long after its creation, e.g. 4h, 90m, 3600s "
                        "(overrides batch.timeout)")
    p.add_argument("--grace", type=float, default=30.0, metavar="SECONDS", help="on Ctrl-C, wait this long for in-flight requests")
    p.add_argument("--progress", choices=["auto", "rich", "plain", "none"], default="auto",
                   help="progress display (auto: rich on a terminal, plain lines otherwise)")
    p.add_argument("--status-every", type=float, default=30.0, metavar="SECONDS", help="plain status line interval")
    _add_input_flags(p)


def _add_redo(commands, common) -> None:
    p = _command(commands, common, "redo", "Send the rows a marks file rejects again, as new versions.",
                 "Each rejected row's request gets a new seed (its seed plus 1000 x (version - 1)) and its own\n"
                 "request id; its new image is NAME.vN beside the rejected one, which is kept, as is its result\n"
                 "row. The versions are appended to OUTPUT/versions.jsonl, which every later plan applies; then\n"
                 "the job runs as `batchrun run` runs it (same flags; a stopped redo is finished by `batchrun run`).\n"
                 "A marks file naming an unknown row, an image the row no longer holds or another job exits 2,\n"
                 "and nothing is sent.")
    p.add_argument("spec", type=Path, help="the job spec, e.g. jobs/demo.yaml")
    _add_output_dir(p)
    p.add_argument("marks", type=Path, help="the marks file saved from the report (see the README's marks format)")
    p.add_argument("--dry-run", action="store_true",
                   help="list what would be sent and its estimated cost; write nothing, send nothing")
    _add_run_flags(p)
    p.set_defaults(handler=cmd_redo)


def _add_status(commands, common) -> None:
    p = _command(commands, common, "status", "Show a job's progress from its output folder alone (no network).",
                 "Counts are for the manifest; failed, invalid and blocked results are broken down by error\n"
                 "kind (blocked: finish reason), each with an example message. Spend is every result's, as\n"
                 "the run's budget counts it, and says how much went on results no longer in the manifest.\n"
                 "A spec changed since the last plan is pointed out (`batchrun plan` refreshes the manifest).\n"
                 "After a run at the batch tier, each batch is listed from the ledger: chunk, batch name, state as\n"
                 "last polled, requests, age and results collected.")
    p.add_argument("spec", type=Path, help="the job spec, e.g. jobs/demo.yaml")
    _add_output_dir(p)
    p.add_argument("--json", action="store_true", help="print the summary as JSON (money rounded to 6 decimals)")
    p.set_defaults(handler=cmd_status)


def _add_report(commands, common) -> None:
    p = _command(commands, common, "report", "Write the job's HTML report (summary, contact sheet, reject marks); print its path.",
                 "Writes OUTPUT/report/index.html, a static page that opens from file:// (no server, no network):\n"
                 "the run summary, a contact sheet (a line per input row, a column per matrix combination),\n"
                 "filters, search, and images flagged for a size, aspect ratio or near-duplicate. Thumbnails are\n"
                 "cached in OUTPUT/report/thumbs/, so a second report decodes only new images. Rejects marked in\n"
                 "the page are saved as NAME-marks.json, for `batchrun redo SPEC MARKS`.")
    p.add_argument("spec", type=Path, help="the job spec, e.g. jobs/demo.yaml")
    _add_output_dir(p)
    p.set_defaults(handler=cmd_report)


def _add_estimate(commands, common) -> None:
    p = _command(commands, common, "estimate", "Price a job before it runs (no network, no key; --pilot N sends a sample first).",
                 "Also shows what its results already cost (the figure the run's budget starts from); a budget\n"
                 "is compared less what results no longer in the manifest cost.")
    p.add_argument("spec", type=Path, help="the job spec, e.g. jobs/demo.yaml")
    _add_output_dir(p)
    p.add_argument("--json", action="store_true")
    p.add_argument("--prices", type=Path, metavar="FILE", help="price overrides (YAML or JSON: model -> rates)")
    p.add_argument("--max-cost", type=float, metavar="USD", help="budget to compare against")
    p.add_argument("--tier", metavar="TIER", help="price the run at this tier (overrides the spec's tier:)")
    p.add_argument("--pilot", type=int, metavar="N",
                   help="send N requests across the job's strata (after showing their cost and asking), keep their "
                        "results, then project the whole job's cost with a 90%% interval")
    p.add_argument("--yes", action="store_true", help="send the pilot without asking")
    p.set_defaults(handler=cmd_estimate)


def _add_simulate(commands, common) -> None:
    p = _command(commands, common, "simulate", "Serve the offline Gemini-compatible simulator on 127.0.0.1.",
                 SIMULATE_DETAILS)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8089, help="0 picks a free port")
    p.add_argument("--profile", choices=["clean", "flaky", "overloaded", "quota"], help="a named fault profile")
    p.add_argument("--faults", metavar="FILE", help="a faults YAML file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--request-log", metavar="FILE", help="append one JSON line per request received")
    p.set_defaults(handler=cmd_simulate)


def _add_export(commands, common) -> None:
    p = _command(commands, common, "export", "Write one table of the job: each expanded row, its variables and its result.",
                 "One row per manifest row (status `pending` until it has a result): input columns, matrix values,\n"
                 "status, error, image path, cost, tokens, text, prompt, and with a response schema the reply's\n"
                 "top-level fields as json.<field> columns. Reads the output folder alone (no network); streamed.\n"
                 "Exits 2 when nothing was planned yet (run `batchrun plan`), 10 when the file can't be written.")
    p.add_argument("spec", type=Path, help="the job spec, e.g. jobs/demo.yaml")
    _add_output_dir(p)
    p.add_argument("--format", choices=["parquet", "csv", "jsonl"], default="parquet", help="default: parquet")
    p.add_argument("--out", type=Path, metavar="FILE", help="where to write it (default: OUTPUT/export.FORMAT)")
    p.add_argument("--relative-paths", action="store_true",
                   help="image paths relative to the output folder (default: absolute)")
    p.set_defaults(handler=cmd_export)


def _add_schedule(commands, common) -> None:
    p = _command(commands, common, "schedule", "Run a job every night from cron or a systemd user timer.",
                 SCHEDULE_DETAILS)
    p.add_argument("spec", type=Path, nargs="?", help="the job spec, e.g. jobs/demo.yaml (with --remove, "
                                                      "its job name also does)")
    p.add_argument("--at", metavar="HH:MM", help="local time each run starts, e.g. 01:30")
    p.add_argument("--until", metavar="HH:MM", help="passed on to `batchrun run`: stop sending at this time")
    p.add_argument("--days", metavar="DAYS", help="mon-fri, mon,wed,fri, sat-sun, weekdays, weekends (default: daily)")
    p.add_argument("--tier", metavar="TIER", help="passed on to `batchrun run --tier`")
    p.add_argument("--wait-quota", action="store_true", help="passed on to `batchrun run`")
    p.add_argument("--install", action="store_true", help="install it for the current user")
    p.add_argument("--with", dest="with_", choices=["cron", "systemd"],
                   help="where to install or remove (default: systemd when `systemctl --user` works, else cron)")
    p.add_argument("--list", action="store_true", help="list the batchrun jobs scheduled for this user")
    p.add_argument("--remove", action="store_true", help="remove SPEC's schedule (the env file is kept)")
    p.set_defaults(handler=cmd_schedule)


SCHEDULE_DETAILS = (
    "Prints a crontab line and a systemd service and timer: absolute paths, the key read from\n"
    "~/.config/batchrun/NAME.env (created by --install with mode 0600 and the variable's name only), each\n"
    "night's output in OUTPUT/logs/run-YYYY-MM-DD.log. Exit codes 0, 5, 8, 9 and 13 are expected states:\n"
    "the command then exits 0 and cron mails nothing; any other code prints one line (mailed) and is kept.")


def cmd_schedule(args) -> int:
    from .schedule.command import run_schedule

    print(run_schedule(args))
    return 0


def cmd_plan(args) -> int:
    from batchrun.planning.spec import load_spec

    from .options import plan_options

    options = plan_options(args)
    loaded = load_spec(args.spec, args.output_dir)  # before the heavier imports: a bad spec is reported at once
    from batchrun.cost.lifecycle import lifecycle_warning
    from batchrun.planning.plan import plan_job, render_request

    _warn(loaded.warnings, lifecycle_warning_for(loaded.spec.model, lifecycle_warning))
    from batchrun.planning.plan import InputChoices

    summary = plan_job(loaded, show=options.show, inputs=InputChoices(options.refresh, options.skip_bad_inputs))
    _upload(loaded.output_dir)
    _warn(summary.warnings)
    if options.json:
        print(json.dumps(summary.to_json(), indent=2))
        return 0
    print(format_plan(summary))
    for record in summary.shown:
        print(render_request(record, loaded.spec.provider.kind, loaded.spec.provider))
    return 0


def lifecycle_warning_for(model: str, check) -> list[str]:
    import datetime

    found = check(model, datetime.date.today())
    return [found] if found else []


def _warn(*groups: list[str]) -> None:
    for group in groups:
        for line in group:
            log.warning(line)


def format_plan(summary) -> str:
    variants = f" x variants {summary.variants:,}" if summary.variants > 1 else ""
    lines = [
        f"manifest: {_shown(summary.manifest)}",
        f"rows: {summary.rows:,}  (input rows {summary.input_rows:,} x matrix combinations "
        f"{summary.combinations:,}{variants}); each gets its own result",
        f"requests: {summary.requests:,}  (sent and paid for)",
        f"models: {', '.join(summary.models)}",
        f"input images: {summary.images:,} distinct, {summary.image_bytes:,} bytes",
    ]
    if summary.skipped:
        lines.append(format_skipped(summary))
    if summary.redone_rows:
        lines.append(f"redone: {summary.redone_rows:,} rows at a new version (`batchrun redo`, recorded in "
                     "versions.jsonl): a new seed, request id and image name each; earlier images are kept")
    if summary.shared_rows:
        lines.append(f"shared: {summary.shared_rows:,} rows make the same request as another row; each such "
                     "request is sent once and its reply (and image) copied to every row, its cost counted once")
    return "\n".join(lines)


def format_skipped(summary) -> str:
    """The rows --skip-bad-inputs left out: a count, the file that lists them, the first few."""
    head = (f"skipped: {len(summary.skipped):,} input rows with a bad photo, not in the manifest "
            f"(all listed in {_shown(summary.skipped_file)})")
    shown = [f"  row {row.row}{f' ({row.ident})' if row.ident else ''}: {row.reason}" for row in summary.skipped[:10]]
    more = len(summary.skipped) - len(shown)
    return "\n".join([head, *shown, *([f"  and {more:,} more"] if more > 0 else [])])


def cmd_run(args) -> int:
    import datetime

    from batchrun.planning.spec import load_spec

    from .options import run_options

    options = run_options(args, datetime.datetime.now())  # before the spec is read: a bad flag writes nothing
    from .jobrun import run_job

    return run_job(load_spec(args.spec, args.output_dir), options)


def cmd_redo(args) -> int:
    import datetime

    from batchrun.planning.spec import load_spec

    from .options import run_options

    options = run_options(args, datetime.datetime.now())  # before the spec is read: a bad flag writes nothing
    loaded = load_spec(args.spec, args.output_dir)
    from batchrun.review.redo import format_preview, preview_redo, record_redo

    from .jobrun import api_key, load_catalog, run_job, run_tier

    if args.dry_run:
        tier = run_tier(loaded, options).value
        print(format_preview(preview_redo(loaded, args.marks, load_catalog(loaded, options.prices), tier)))
        return 0
    api_key(loaded)  # a missing key stops the redo before anything is recorded
    rejections = record_redo(loaded, args.marks, datetime.datetime.now(datetime.UTC))
    if not rejections:
        print("nothing to redo: the marks file rejects no image")
        return 0
    print(f"redo: {len(rejections):,} rejected rows recorded as new versions in "
          f"{_shown(loaded.output_dir / 'versions.jsonl')}; sending them")
    return run_job(loaded, options)


def cmd_status(args) -> int:
    from batchrun.cost.pricing import PriceCatalog
    from batchrun.output.status import format_status, summarize
    from batchrun.planning.plan import manifest_is_current
    from batchrun.planning.spec import load_spec

    from .options import status_options

    options = status_options(args)
    loaded = load_spec(args.spec, args.output_dir)
    # A fingerprint of the spec and its inputs' size and time, not a plan: status stays cheap.
    summary = summarize(loaded.output_dir, spec_changed=not manifest_is_current(loaded),
                        catalog=PriceCatalog.load(overrides=loaded.spec.pricing))
    print(json.dumps(summary.to_json(), indent=2) if options.json else format_status(summary))
    return 0


def cmd_report(args) -> int:
    from batchrun.planning.spec import load_spec
    from batchrun.review.report import write_report

    loaded = load_spec(args.spec, args.output_dir)
    written = write_report(loaded.output_dir, loaded.spec.name)
    _upload(loaded.output_dir)
    copy = _local_copy(written.path)
    print(f"{_shown(written.path)}  ({copy})" if copy else written.path)
    return 0


def _shown(path) -> str:
    """A path in an output folder as the user knows it: in the bucket for a bucket's job (see `shown_output`)."""
    from batchrun.output.mirror import shown_output

    return shown_output(path)


def _local_copy(path) -> str:
    """In a bucket's job, where the local copy of a file in the bucket is (to open it); else nothing."""
    return "" if _shown(path) == str(path) else f"a copy here: {path}"


def _upload(output_dir) -> None:
    """Push what a command wrote into an output folder kept in a bucket (nothing for a local folder)."""
    from batchrun.output.mirror import push_output

    push_output(output_dir)


def cmd_estimate(args) -> int:
    from batchrun.planning.spec import load_spec

    from .options import estimate_options

    options = estimate_options(args)
    if options.pilot is not None:
        return _pilot(load_spec(args.spec, args.output_dir), options)
    from .jobrun import estimate_job

    print(estimate_job(load_spec(args.spec, args.output_dir), options))
    return 0


def _pilot(loaded, options) -> int:
    import datetime

    from .pilotrun import pilot_job

    text, code = pilot_job(loaded, options, _ask if sys.stdin.isatty() else None,
                           lambda: datetime.datetime.now(datetime.UTC))
    print(text)
    return code


def _ask(offer: str) -> bool:
    """Shows the pilot's cost on stderr and reads y/N from the terminal."""
    print(offer, file=sys.stderr)
    try:
        return input("Send the pilot? [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:  # Ctrl-D: no
        return False


def cmd_export(args) -> int:
    from batchrun.planning.spec import load_spec
    from batchrun.review.export import ExportFormat, default_export_path, export_table
    from batchrun.review.table import open_review_table

    loaded = load_spec(args.spec, args.output_dir)
    export_format = ExportFormat(args.format)
    table = open_review_table(loaded.output_dir, relative_paths=args.relative_paths)
    exported = export_table(table, args.out or default_export_path(loaded.output_dir, export_format), export_format)
    _upload(loaded.output_dir)
    copy = _local_copy(exported.path)
    print(f"{_shown(exported.path)}  ({exported.rows:,} rows{'; ' + copy if copy else ''})")
    return 0


def cmd_simulate(args) -> int:
    from .options import simulate_options
    from .simulator.server import serve

    options = simulate_options(args)

    def ready(port: int) -> None:
        print(f"batchrun simulator listening on http://{options.host}:{port}", flush=True)

    try:
        serve(
            options.host, options.port, profile=options.profile,
            faults_file=None if options.faults is None else str(options.faults), seed=options.seed,
            request_log=None if options.request_log is None else str(options.request_log), on_ready=ready,
        )
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        raise UsageError(f"port {options.port} on {options.host} is in use; pick another with --port, "
                         "or --port 0 for a free one") from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
