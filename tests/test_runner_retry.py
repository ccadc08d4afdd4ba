"""RetryPolicy and send_with_retries: exact wait schedules from a seeded random source and a fake clock."""

from __future__ import annotations

import random

import pytest

from batchrun.records import Outcome, ProviderReply
from batchrun.running.clock import FakeClock
from batchrun.running.retry import RetryPolicy, send_with_retries

pytestmark = pytest.mark.anyio

SEED = 1234


def retry(http_status: int = 503, **fields: object) -> ProviderReply:
    return ProviderReply(outcome=Outcome.RETRY, http_status=http_status, **fields)  # type: ignore[arg-type]


def full_jitter(seed: int, initial_s: float, max_wait_s: float, attempts: int) -> list[float]:
    """The expected waits after sends 1..attempts: uniform in [0, min(max, initial * 2^(n-1))]."""
    rng = random.Random(seed)
    return [rng.uniform(0, min(max_wait_s, initial_s * 2 ** (n - 1))) for n in range(1, attempts + 1)]


# --- next_wait -------------------------------------------------------------------------------


def test_waits_are_full_jitter_exponential_from_the_seeded_source() -> None:
    policy = RetryPolicy(max_attempts=6, initial_s=1.0, max_wait_s=60.0, rng=random.Random(SEED))
    waits = [policy.next_wait(attempt, retry()) for attempt in range(1, 6)]
    assert waits == full_jitter(SEED, 1.0, 60.0, 5)
    assert all(0 <= w <= 2 ** (n - 1) for n, w in enumerate(waits, start=1))  # type: ignore[operator]


def test_the_backoff_window_is_capped_at_max_wait() -> None:
    policy = RetryPolicy(max_attempts=20, initial_s=1.0, max_wait_s=4.0, rng=random.Random(SEED))
    waits = [policy.next_wait(attempt, retry()) for attempt in range(1, 10)]
    assert waits == full_jitter(SEED, 1.0, 4.0, 9)
    assert max(waits) <= 4.0  # type: ignore[type-var]


def test_the_server_delay_is_a_floor_not_a_replacement() -> None:
    policy = RetryPolicy(initial_s=1.0, rng=random.Random(SEED))
    short_backoff, long_backoff = full_jitter(SEED, 1.0, 60.0, 5)[0], full_jitter(SEED, 1.0, 60.0, 5)[4]
    assert policy.next_wait(1, retry(429, retry_after_s=7.0)) == 7.0  # backoff drew < 1 s
    assert short_backoff < 7.0
    for attempt in range(2, 5):
        policy.next_wait(attempt, retry())
    assert policy.next_wait(5, retry(429, retry_after_s=0.5)) == long_backoff  # drew more than 0.5
    assert long_backoff > 0.5


def test_gives_up_after_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=3, rng=random.Random(SEED))
    assert policy.next_wait(2, retry()) is not None
    assert policy.next_wait(3, retry()) is None
    assert policy.next_wait(4, retry(429, retry_after_s=1.0)) is None


@pytest.mark.parametrize("kind", ["no_image", "recitation"])
def test_a_reply_without_its_image_is_retried_only_no_image_attempts_times(kind: str) -> None:
    policy = RetryPolicy(max_attempts=6, no_image_attempts=3, rng=random.Random(SEED))
    assert policy.next_wait(2, retry(200, error_kind=kind)) is not None
    assert policy.next_wait(3, retry(200, error_kind=kind)) is None
    assert policy.next_wait(3, retry(503, error_kind="unavailable")) is not None


def test_no_image_attempts_never_exceed_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=2, no_image_attempts=5, rng=random.Random(SEED))
    assert policy.next_wait(2, retry(200, error_kind="no_image")) is None


@pytest.mark.parametrize(
    "outcome", [o for o in Outcome if o is not Outcome.RETRY], ids=lambda o: o.value
)
def test_outcomes_other_than_retry_never_get_a_wait(outcome: Outcome) -> None:
    policy = RetryPolicy(rng=random.Random(SEED))
    assert policy.next_wait(1, ProviderReply(outcome=outcome, retry_after_s=5.0)) is None


@pytest.mark.parametrize(
    "settings", [{"max_attempts": 0}, {"no_image_attempts": 0}, {"initial_s": -1.0}]
)
def test_settings_that_cannot_work_are_refused(settings: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**settings)  # type: ignore[arg-type]


# --- send_with_retries -----------------------------------------------------------------------


class ScriptedSend:
    """A send that returns the given replies in turn and notes the virtual time of each call."""

    def __init__(self, clock: FakeClock, replies: list[ProviderReply]) -> None:
        self.clock = clock
        self.replies = list(replies)
        self.sent_at: list[float] = []

    async def __call__(self) -> ProviderReply:
        self.sent_at.append(self.clock.now())
        return self.replies.pop(0)


async def test_send_with_retries_sleeps_the_exact_schedule_until_ok() -> None:
    clock = FakeClock()
    ok = ProviderReply(outcome=Outcome.OK, http_status=200)
    send = ScriptedSend(clock, [retry(503), retry(429, retry_after_s=7.0), retry(500), ok])
    policy = RetryPolicy(rng=random.Random(SEED))
    async with clock.autojump():
        reply, attempts = await send_with_retries(send, policy, clock)
    jitter = full_jitter(SEED, 1.0, 60.0, 3)
    waits = [jitter[0], max(jitter[1], 7.0), jitter[2]]
    assert (reply, attempts) == (ok, 4)
    assert send.sent_at == pytest.approx([0.0, waits[0], waits[0] + waits[1], sum(waits)])
    assert send.sent_at[2] - send.sent_at[1] == pytest.approx(7.0)  # the 429's retryDelay, longer than the draw


async def test_send_with_retries_returns_the_last_reply_when_attempts_run_out() -> None:
    clock = FakeClock()
    replies = [retry(503, error_message=f"try {n}") for n in range(1, 4)]
    send = ScriptedSend(clock, replies)
    policy = RetryPolicy(max_attempts=3, rng=random.Random(SEED))
    async with clock.autojump():
        reply, attempts = await send_with_retries(send, policy, clock)
    assert (reply.error_message, attempts) == ("try 3", 3)
    assert len(send.sent_at) == 3


async def test_send_with_retries_returns_a_final_reply_at_once() -> None:
    clock = FakeClock()
    blocked = ProviderReply(outcome=Outcome.BLOCKED, http_status=200)
    send = ScriptedSend(clock, [blocked])
    reply, attempts = await send_with_retries(send, RetryPolicy(), clock)
    assert (reply, attempts, clock.now()) == (blocked, 1, 0.0)


async def test_send_with_retries_tells_on_retry_the_attempt_reply_and_wait() -> None:
    clock = FakeClock()
    replies = [retry(200, error_kind="no_image")] * 3
    send = ScriptedSend(clock, replies)
    seen: list[tuple[int, str | None, float]] = []
    policy = RetryPolicy(no_image_attempts=3, rng=random.Random(SEED))
    async with clock.autojump():
        _, attempts = await send_with_retries(
            send, policy, clock, on_retry=lambda n, r, w: seen.append((n, r.error_kind, w))
        )
    jitter = full_jitter(SEED, 1.0, 60.0, 2)
    assert attempts == 3
    assert seen == [(1, "no_image", jitter[0]), (2, "no_image", jitter[1])]


async def test_an_exception_from_send_is_not_retried() -> None:
    calls = 0

    async def broken() -> ProviderReply:
        nonlocal calls
        calls += 1
        raise KeyError("bug")

    with pytest.raises(KeyError):
        await send_with_retries(broken, RetryPolicy(), FakeClock())
    assert calls == 1
