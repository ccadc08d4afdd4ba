"""Every error batchrun reports to a user, and the exit code each one ends a command with.

    BatchrunError                      exit code
     ├── SpecError                      2   a job spec or its inputs are wrong (names file, YAML path, fix)
     │    └── SpecProblems              2   several at once (bad rows, bad images): ten listed, and a count
     ├── UsageError                     2   a command line or an output folder is wrong
     │    ├── AlreadyRunning            9   another run or plan holds the output folder's lock
     │    └── UnknownProvider           2   provider.kind names no entry of the provider registry
     └── RunStopped                         a run stopped by itself, cleanly and resumably
          ├── BudgetReached             4
          ├── DeadlineReached           5
          ├── AuthFailed                6   bad key, no permission: stop at once
          ├── QuotaExhausted            7   a per-day quota, or a server delay past the cap: wait
          ├── BillingStopped           12   the prepaid credit is used up (402): add credit
          ├── LeaseLost                 9   another run took a bucket job's lease over: it sends the rest
          ├── WriteFailed              10   the output folder can't be written (disk full, read-only)
          │    └── StorageFailed        10   its bucket (s3://, gs://) can't be listed, read or written
          ├── ConfigRejected           11   the first replies were all 400/404: wrong endpoint or model
          │    └── NoBatchRoute        11   batch create answered 404: the endpoint has no batch route
          └── Interrupted             130   Ctrl-C

    Problems a stage hands to its caller, which words them for a user (never shown alone):
    TemplateProblem, ImageProblem, BadInputLine, InputProblem, YamlRefused; in the simulator, InvalidRequest,
    SchemaError, UnsupportedPattern, UnsupportedImageConfig (each an HTTP 400 reply).
    RequestAbandoned                       internal, never shown: the run is stopping, so the pool leaves
                                           this request pending (the next run sends it)
    InputImageChanged (not a BatchrunError): an input image changed after the plan; the provider
    records that request `invalid` (error kind `input_changed`) and the run goes on.

    A run that finishes returns 0 when every row is ok, 3 when some failed after their last attempt
    (sent again by the next run), 8 when none failed but some are final and not ok (blocked, invalid),
    13 when a batch run (--tier batch) leaves batches still running at the server (run again later).

Messages say what to do. None of them ever holds an API key or a header value.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_FAILURES = 3
EXIT_BUDGET = 4
EXIT_DEADLINE = 5
EXIT_AUTH = 6
EXIT_QUOTA = 7
EXIT_NOT_OK = 8
EXIT_RUNNING = 9
EXIT_WRITE = 10
EXIT_CONFIG = 11
EXIT_BILLING = 12
EXIT_BATCHES_RUNNING = 13
EXIT_INTERRUPTED = 130


class BatchrunError(Exception):
    """Base of every error batchrun reports to a user."""

    exit_code = EXIT_USAGE


class SpecError(BatchrunError):
    """A job spec, an input file or an input image is wrong; says where and how to fix it."""

    exit_code = EXIT_USAGE

    def __init__(self, file: str, path: str, message: str) -> None:
        self.file = str(file)
        self.path = path
        self.message = message
        where = f"{self.file}: {path}: " if path else f"{self.file}: "
        super().__init__(where + message)


class SpecProblems(SpecError):
    """Several problems at once (bad rows, bad images): the first ten on one line, and a count."""

    LISTED = 10

    def __init__(self, file: str, problems: list[tuple[str, str]], total: int | None = None) -> None:
        self.problems = problems[: self.LISTED]
        self.total = max(total or 0, len(problems))
        paths = {path for path, _ in self.problems}
        more = self.total - len(self.problems)
        tail = f"; and {more} more" if more > 0 else ""
        if len(paths) == 1:
            path = self.problems[0][0]
            listed = "; ".join(msg for _, msg in self.problems)
            message = f"{self.total} bad rows: {listed}{tail}"
        else:
            path = self.problems[0][0] if self.problems else ""
            listed = "; ".join(f"{p}: {msg}" for p, msg in self.problems)
            message = f"{self.total} problems: {listed}{tail}"
            BatchrunError.__init__(self, f"{file}: {message}")
            self.file, self.path, self.message = str(file), path, message
            return
        SpecError.__init__(self, file, path, message)


class UsageError(BatchrunError):
    """A command-line option or an output folder is wrong."""

    exit_code = EXIT_USAGE


class AlreadyRunning(UsageError):
    """Another batchrun process holds an output folder's lock; its own exit code, so cron can tell."""

    exit_code = EXIT_RUNNING

    def __init__(self, out_dir: object, pid: int | None = None, started_at: str | None = None) -> None:
        self.pid, self.started_at = pid, started_at
        facts = [f"pid {pid}"] if pid is not None else []
        facts += [f"started {started_at}"] if started_at else []
        holder = f" ({', '.join(facts)})" if facts else ""
        super().__init__(f"another batchrun run is writing {out_dir}{holder}; wait for it to end or stop it, "
                         f"then run again")


class BucketLeased(UsageError):
    """Another machine's fresh lease on a bucket job (`.batchrun-lease.json`); exit 9, as for a local lock."""

    exit_code = EXIT_RUNNING

    def __init__(self, location: str, host: str, pid: int, started_at: str, renewed_at: str, fresh_s: float) -> None:
        self.host, self.pid = host, pid
        super().__init__(f"{location} is being run on {host} (pid {pid}, started {started_at}, last upload "
                         f"{renewed_at}); wait for that run to end (its lease lapses {fresh_s / 60:g} min after "
                         f"its last upload), or if that machine is gone run again with --take-over")


class RunStopped(BatchrunError):
    """A run stopped by itself; what it had done is kept and `batchrun run` resumes it."""


class BudgetReached(RunStopped):
    exit_code = EXIT_BUDGET


class DeadlineReached(RunStopped):
    exit_code = EXIT_DEADLINE


class AuthFailed(RunStopped):
    exit_code = EXIT_AUTH


class QuotaExhausted(RunStopped):
    exit_code = EXIT_QUOTA


class BillingStopped(RunStopped):
    exit_code = EXIT_BILLING


class LeaseLost(RunStopped):
    """Another run took this bucket job's lease over; exit 9, as when that run's lease refuses this one."""

    exit_code = EXIT_RUNNING


class WriteFailed(RunStopped):
    exit_code = EXIT_WRITE


class StorageFailed(WriteFailed):
    """The bucket behind an output folder (`s3://`, `gs://`) refused or could not be reached."""


class ConfigRejected(RunStopped):
    exit_code = EXIT_CONFIG


class Interrupted(RunStopped):
    exit_code = EXIT_INTERRUPTED


class NoBatchRoute(ConfigRejected):
    """The endpoint answered 404 to a batch create: it offers no Batch Mode (a gateway, often)."""

    def __init__(self, base_url: str) -> None:
        super().__init__(f"{base_url} has no batch route (batchGenerateContent answered 404); "
                         "use --tier flex or standard")


class UnknownProvider(UsageError):
    """`provider.kind` names no provider batchrun knows."""

    def __init__(self, kind: str, known: list[str]) -> None:
        self.kind = kind
        super().__init__(f"provider.kind {kind!r} is not a provider batchrun knows; use one of {', '.join(known)}")


class InputImageChanged(Exception):
    """An input image is missing, or its bytes no longer match the hash the manifest holds."""


# Problems one stage reports to the stage that called it, which words them for a user (a SpecError naming
# the file, row and fix; in the simulator, an HTTP 400 reply): their messages are never shown alone.


class TemplateProblem(Exception):
    """A template that does not compile or render; `variable` names a missing variable, if any."""

    def __init__(self, message: str, variable: str | None = None) -> None:
        super().__init__(message)
        self.variable = variable


class ImageProblem(Exception):
    """An input image that cannot be sent; the message says why and what to do."""


class BadInputLine(ValueError):
    """A line of a jsonl input that is not one JSON object."""


class InputProblem(ValueError):
    """An input file that cannot give rows as the spec asks: (the spec field to fix, message)."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(where, message)
        self.where, self.message = where, message


class YamlRefused(Exception):
    """A YAML document that parsed but is refused: (YAML path or line, message)."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(where, message)
        self.where, self.message = where, message


class InvalidRequest(ValueError):
    """Simulator: the body is not a generateContent request the API would accept (HTTP 400)."""


class SchemaError(ValueError):
    """Simulator: the response schema admits no value the simulator can make."""


class UnsupportedPattern(ValueError):
    """Simulator: the pattern uses something its sampler cannot draw (a lookaround, a conditional)."""


class UnsupportedImageConfig(ValueError):
    """Simulator: the request asked for an aspect ratio or image size the model does not offer."""
class RequestAbandoned(Exception):
    """The run is stopping: the pool leaves this request pending, unrecorded. Never reaches a user."""


def batches_running_message(chunks: int) -> str:
    return (f"{chunks} batch{'es' if chunks != 1 else ''} still running at the server: run `batchrun run` "
            "again later, or use --wait")


def missing_key_message(env_var: str) -> str:
    return f"no API key: set the environment variable {env_var} (provider.api_key_env names it)"


def unsendable_key_message(env_var: str) -> str:
    return (
        f"the key in {env_var} holds a character an HTTP header can't carry (a line break, a control "
        "character or a non-ASCII character); set it again without it"
    )


def tier_message(value: object) -> str:
    """What is wrong with a tier named in `tier:` or `--tier`, and what to write instead."""
    return (f"{value!r} is not a tier; use standard, flex (half price, slower), batch (half price, answers "
            "within 24 hours) or priority (about 1.8x, faster)")


def batch_kind_message(kind: str) -> str:
    """The batch tier asked of a provider kind whose endpoint has no Batch Mode."""
    return (f"the batch tier is Gemini-only for now (provider.kind gemini or simulator, not {kind}); "
            "use --tier flex, also half price")


def batch_images_message(requests: int, path: str, limit: int) -> str:
    """Requests whose input images would go through the Files API, asked of the batch tier."""
    return (f"--tier batch: {requests} requests carry input images over the batch line's inline limit of "
            f"{limit:,} bytes (the first: {path}), and batch lines don't refer to uploaded files yet; "
            "run them with --tier standard or flex, or shrink the photos with request.image_prep")


def server_delay_message(delay_s: float, cap_s: float) -> str:
    """A server asked to wait longer than `retry.max_server_delay_s`: the run stops on it."""
    return (f"the server asked to wait {duration_text(delay_s)} before sending again, more than "
            f"retry.max_server_delay_s ({duration_text(cap_s)}): a quota is likely spent; run `batchrun run` "
            "again later, or raise retry.max_server_delay_s to wait it out")


def duration_text(seconds: float) -> str:
    """`45s`, `12m30s`, `1h05m`: how long, in a message."""
    whole = round(seconds)
    if whole < 60:
        return f"{seconds:.3g}s" if seconds < 10 else f"{whole}s"
    minutes, secs = divmod(whole, 60)
    return f"{minutes}m{secs:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def fallback_tier_message(value: object) -> str:
    """A fallback tier that can't take a batch's requests synchronously."""
    return (f"{value!r} is not a fallback tier; a fallback sends synchronously: use flex (half price, slower) "
            "or standard")


def fallback_needs_batch_message() -> str:
    """`--fallback` / `--batch-timeout` given to a run that submits no batches."""
    return "applies to batch runs only; add --tier batch (or set tier: batch in the spec), or drop it"


def timeout_needs_fallback_message() -> str:
    """A batch timeout with nothing to switch to."""
    return ("needs a tier to switch to; add --fallback flex or --fallback standard (or batch.fallback in the "
            "spec)")



def projection_needed_message(setting: str, path: object, stale: bool) -> str:
    """A cap from the pilot's projection asked for (by `setting`), with no projection of the manifest as it is now."""
    why = ("was made for an earlier plan of the job (the spec or its inputs changed since)" if stale
           else "does not exist")
    return (f"{setting}: {path} {why}; run `batchrun estimate SPEC --pilot N` first, "
            "or cap the run with --max-cost")


def pilot_needs_yes_message(requests: int, cost: str) -> str:
    return (f"the pilot sends {requests:,} requests ({cost}) and there is no terminal to ask: "
            "add --yes to send them")


def ray_missing_message() -> str:
    """`--ray` without Ray installed."""
    return "--ray needs Ray: pip install 'batchrun[ray]' (or run without --ray)"


def ray_target_message(text: str) -> str:
    return (f"--ray {text}: expected auto (join the cluster RAY_ADDRESS names) or local:N (start a local cluster "
            "of N worker processes), e.g. --ray local:4")


_S3_CREDENTIALS = ("the standard AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, and AWS_ENDPOINT_URL for an "
                   "S3-compatible server")
_GCS_CREDENTIALS = ("Google's standard credentials: GOOGLE_APPLICATION_CREDENTIALS naming a key file, "
                    "`gcloud auth application-default login`, or the metadata server on Google Cloud; "
                    "STORAGE_EMULATOR_HOST for an emulator")


def storage_failed_message(location: str, action: str, detail: str) -> str:
    credentials = _GCS_CREDENTIALS if location.startswith("gs://") else _S3_CREDENTIALS
    return (f"{location}: cannot {action}: {detail}; check the bucket exists and the credentials allow it "
            f"({credentials}), then run again: what was not uploaded is kept in the local staging folder")


def missing_bucket_message(location: str, bucket: str) -> str:
    """A location whose bucket doesn't exist (a typo, most often): found when the job is first read."""
    credentials = _GCS_CREDENTIALS if location.startswith("gs://") else _S3_CREDENTIALS
    return (f"{location}: cannot read the job: the bucket {bucket} does not exist; fix output.dir (or --output-dir) "
            f"if it is mistyped, or create the bucket, then run again (it is looked up with {credentials})")


def lease_lost_message(location: str, host: str, pid: int, run_id: str) -> str:
    """The stop line of a run whose bucket lease another run took over."""
    return (f"{location} was taken over by {host} (pid {pid}, run {run_id}), so this run stopped sending; its "
            f"results so far are in {location}, and that run sends the rest")


def final_upload_failed_message(storage: str, code: int, staging: object) -> str:
    """A run that ended with `code` whose last push to the bucket failed: the run's exit becomes a write error."""
    return (f"the run ended (exit {code}) but its last upload failed, so the bucket lacks its latest results: "
            f"{storage} ({staging}); the next `batchrun run` of the job on this machine uploads them")
