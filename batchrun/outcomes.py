"""The typed outcomes every stage shares: how an exchange ended, the status of a result row, the kind of error.

Declared once here and used by the providers (which produce them), the pool and the retry policy
(which act on them), the sink and `status` (which store and count them). Each is a `StrEnum`, so the
values written to Parquet, the journal and JSON are the same plain strings as before, and a value read
back from a file compares equal to its member.

    Outcome (one exchange)   Status (its result row)
    OK                       ok
    BLOCKED                  blocked
    INVALID                  invalid
    RETRY                    failed, once the retry policy gives up
    STOP_AUTH / STOP_QUOTA / STOP_BILLING: never recorded, the run stops and the row stays pending
"""

from __future__ import annotations

import enum


class Outcome(enum.StrEnum):
    """How one exchange ended, as the runner must act on it."""

    OK = "ok"  # final: a usable reply
    BLOCKED = "blocked"  # final: a safety or policy block
    INVALID = "invalid"  # final: the request itself is wrong (400, 404 ...)
    RETRY = "retry"  # worth sending again (429, 5xx, timeout, no image ...)
    STOP_AUTH = "stop_auth"  # stop the run: bad key or no permission
    STOP_QUOTA = "stop_quota"  # stop the run: a per-day quota is spent
    STOP_BILLING = "stop_billing"  # stop the run: the account's prepaid credit is used up


class Status(enum.StrEnum):
    """The `status` column of a result row."""

    OK = "ok"
    BLOCKED = "blocked"
    INVALID = "invalid"
    FAILED = "failed"  # not final: the next run sends the row again

    @classmethod
    def of(cls, outcome: Outcome) -> Status:
        """The status a final exchange is recorded with (a RETRY the policy gave up on: failed)."""
        return _STATUS_OF_OUTCOME[outcome]


_STATUS_OF_OUTCOME = {Outcome.OK: Status.OK, Outcome.BLOCKED: Status.BLOCKED, Outcome.INVALID: Status.INVALID,
                      Outcome.RETRY: Status.FAILED}

FINAL_STATUSES: tuple[Status, ...] = (Status.OK, Status.BLOCKED, Status.INVALID)  # a row with one is done
RETRYABLE_FINAL: tuple[Status, ...] = (Status.INVALID, Status.BLOCKED)  # final, but `--retry` sends them again
STATUSES: tuple[Status, ...] = (*FINAL_STATUSES, Status.FAILED)


class ErrorKind(enum.StrEnum):
    """The `error_kind` of a reply and of its result row (the decision table is in `providers.classify`)."""

    # replies without what was asked
    NO_IMAGE = "no_image"
    NO_TEXT = "no_text"
    OTHER = "other"
    RECITATION = "recitation"
    TOOL_CALL = "tool_call"
    UNKNOWN_FINISH = "unknown_finish"
    NO_CANDIDATES = "no_candidates"
    MALFORMED = "malformed"
    ENVELOPE_IN_200 = "envelope_in_200"
    # blocks
    SAFETY_BLOCK = "safety_block"
    PROMPT_BLOCKED = "prompt_blocked"
    REFUSAL = "refusal"  # a chat model's `refusal` message
    # the request itself, or the endpoint and model
    UNSUPPORTED_LANGUAGE = "unsupported_language"
    INVALID_REQUEST = "invalid_request"
    NOT_FOUND = "not_found"
    CLIENT_ERROR = "client_error"
    UNEXPECTED_STATUS = "unexpected_status"
    INPUT_CHANGED = "input_changed"
    INPUT_FILE_GONE = "input_file_gone"  # an uploaded input image the server no longer holds: uploaded again
    # the server or the network
    RATE_LIMITED = "rate_limited"
    TIMEOUT = "timeout"
    UNAVAILABLE = "unavailable"
    SERVER_ERROR = "server_error"
    CONNECTION = "connection"
    IMAGE_DOWNLOAD = "image_download"  # a reply named its image by URL and the download failed
    # the account
    AUTH = "auth"
    PERMISSION = "permission"
    PRECONDITION = "precondition"
    DAILY_QUOTA = "daily_quota"
    INSUFFICIENT_QUOTA = "insufficient_quota"
    BILLING = "billing"


# Replies without their image: the same prompt sent many more times rarely draws one, and each try is billed.
SOFT_FAILURE_KINDS = frozenset({ErrorKind.NO_IMAGE, ErrorKind.RECITATION})

# Invalid replies that may say more about the endpoint or model than about the request itself.
CONFIG_ERROR_KINDS = frozenset({ErrorKind.INVALID_REQUEST, ErrorKind.NOT_FOUND, ErrorKind.CLIENT_ERROR,
                                ErrorKind.UNEXPECTED_STATUS})
