"""The `schedule` command's flags checked and handed to `actions`, with the system's places built from
the environment: BATCHRUN_CRONTAB (the crontab command), BATCHRUN_SYSTEMD_DIR (the user unit folder) and
BATCHRUN_SYSTEMCTL (the `systemctl --user` command) replace the real ones, so tests touch neither."""

from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path

from batchrun.errors import UsageError
from batchrun.tiers import run_tier

from .actions import Places, Scheduler, install, list_schedules, nightly_for, remove, schedule_text
from .cron import Crontab
from .nightly import run_flags
from .systemd import SystemdUser, systemctl_answers
from .timing import parse_clock, parse_timing, window_minutes


def places_from(env: os._Environ | dict[str, str]) -> Places:
    """The user's crontab and systemd folder, or the stand-ins the environment names."""
    home = Path(env.get("HOME") or Path.home())
    systemctl = shlex.split(env.get("BATCHRUN_SYSTEMCTL", "systemctl --user"))
    folder = Path(env.get("BATCHRUN_SYSTEMD_DIR") or home / ".config" / "systemd" / "user")
    return Places(home=home, crontab=Crontab(shlex.split(env.get("BATCHRUN_CRONTAB", "crontab"))),
                  systemd=SystemdUser(folder, systemctl), systemd_works=systemctl_answers(systemctl))


def run_schedule(args: argparse.Namespace, places: Places | None = None) -> str:
    """What `batchrun schedule` prints."""
    places = places or places_from(os.environ)
    scheduler = Scheduler(args.with_) if args.with_ else None
    if args.list:
        return list_schedules(places)
    if args.spec is None:
        raise UsageError("name a job spec, e.g. batchrun schedule jobs/demo.yaml --at 01:30, or use --list")
    if args.remove:
        return remove(_job_name(args.spec), places, scheduler)
    return _schedule(args, places, scheduler)


def _schedule(args: argparse.Namespace, places: Places, scheduler: Scheduler | None) -> str:
    from batchrun.planning.spec import load_spec

    if not args.at:
        raise UsageError("--at HH:MM is missing: when each night's run starts, e.g. --at 01:30")
    timing = parse_timing(args.at, args.days)
    window = window_minutes(timing, parse_clock(args.until, "--until")) if args.until else None
    if args.tier:
        _check_tier(args.tier)
    loaded = load_spec(args.spec)
    nightly = nightly_for(loaded, Path.cwd(), places.home, run_flags(args.until, args.tier, args.wait_quota, window))
    key_env = tuple(key.env for key in loaded.spec.provider.key_envs)  # one variable, or each of a key pool
    if not args.install:
        return schedule_text(nightly, timing, key_env, places)
    return install(nightly, timing, key_env, places, scheduler or places.default_scheduler())


def _check_tier(value: str) -> None:
    try:
        run_tier(value)
    except ValueError as exc:
        raise UsageError(f"--tier {value}: {exc}") from None


def _job_name(spec: Path) -> str:
    """The job's name from its spec, or SPEC itself when it is no file (the spec may be gone by now)."""
    if not spec.is_file():
        return spec.stem if spec.suffix in (".yaml", ".yml") else spec.name
    from batchrun.planning.spec import load_spec

    return load_spec(spec).spec.name
