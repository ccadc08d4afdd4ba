"""Every error batchrun reports to a user, and the exit code each one ends a command with.

    BatchrunError                      exit code
     ├── SpecError                      2   a job spec or its inputs are wrong (names file, YAML path, fix)
     ├── UsageError                     2   a command line or an output folder is wrong
     └── RunStopped                         a run stopped by itself, cleanly and resumably
          ├── BudgetReached             4
          ├── DeadlineReached           5
          ├── AuthFailed                6   bad key, no permission: stop at once
          ├── QuotaExhausted            7   a per-day quota: wait for the reset
          └── Interrupted             130   Ctrl-C

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


class SpecErrors(SpecError):
    """Several problems of one kind at once (bad rows, bad images); lists up to ten on one line."""

    LISTED = 10

    def __init__(self, file: str, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        shown = "; ".join(f"{path}: {msg}" for path, msg in problems[: self.LISTED])
        more = len(problems) - self.LISTED
        if more > 0:
            shown += f"; and {more} more"
        first_path = problems[0][0] if problems else ""
        BatchrunError.__init__(self, f"{file}: {len(problems)} problems: {shown}")
        self.file, self.path, self.message = str(file), first_path, shown


class UsageError(BatchrunError):
    """A command-line option or an output folder is wrong."""

    exit_code = EXIT_USAGE


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


class Interrupted(RunStopped):
    exit_code = EXIT_INTERRUPTED


def missing_key_message(env_var: str) -> str:
    return f"no API key: set the environment variable {env_var} (provider.api_key_env names it)"
