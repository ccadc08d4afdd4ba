"""How long to wait before sending a request again, and when to give up on it.

Input: the attempt count so far and the last `ProviderReply`. Output: a wait in seconds, or None.

Built from tenacity's rules, so the same objects drive `tenacity.AsyncRetrying`:
- `wait_full_jitter`: tenacity's `wait_random_exponential` (a uniform draw in [0, initial * 2^(n-1)],
  capped at `max_wait_s`), drawing from an injected `random.Random` so a seed fixes the schedule;
- `wait_at_least_server_delay`: never shorter than the delay the server asked for
  (`RetryInfo.retryDelay` or `Retry-After`, read by the provider into `retry_after_s`);
- `stop_when_attempts_spent`: after `max_attempts` sends, or after `no_image_attempts` when the reply
  came back without its image (`ProviderReply.missing_output`: no image drawn, or a recitation): the
  same prompt sent many more times rarely draws one, and each try is billed.

Only a reply `worth_another_attempt` (`Outcome.RETRY`) is ever retried; every other outcome is final
(or stops the run) and gets None.
A server delay longer than `max_server_delay_s` is not waited out here: the pool stops the run on it.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable

import tenacity
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from batchrun.records import ProviderReply
from batchrun.running.clock import Clock

OnRetry = Callable[[int, ProviderReply, float], None]


def _reply(retry_state: tenacity.RetryCallState) -> ProviderReply:
    assert retry_state.outcome is not None
    reply: ProviderReply = retry_state.outcome.result()  # a Future of what `attempt` returned
    return reply


def _worth_retrying(reply: ProviderReply) -> bool:
    return reply.worth_another_attempt


class wait_full_jitter(tenacity.wait_random_exponential):
    """tenacity's full-jitter exponential backoff, drawing from the given random source."""

    def __init__(self, *, initial_s: float, max_wait_s: float, rng: random.Random) -> None:
        super().__init__(multiplier=initial_s, max=max_wait_s)
        self.rng = rng

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        high = tenacity.wait_exponential.__call__(self, retry_state)
        return self.rng.uniform(self.min, high)


class wait_at_least_server_delay(wait_base):
    """The backoff's wait, or the server's requested delay if that is longer."""

    def __init__(self, backoff: wait_base) -> None:
        self.backoff = backoff

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        wait = self.backoff(retry_state)
        server_delay = _reply(retry_state).retry_after_s
        return wait if server_delay is None else max(wait, server_delay)


class stop_when_attempts_spent(stop_base):
    """Stop after `max_attempts` sends, or `soft_failure_attempts` for a reply with no image."""

    def __init__(self, max_attempts: int, soft_failure_attempts: int) -> None:
        self.max_attempts = max_attempts
        self.soft_failure_attempts = min(soft_failure_attempts, max_attempts)

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        soft = _reply(retry_state).missing_output
        limit = self.soft_failure_attempts if soft else self.max_attempts
        return retry_state.attempt_number >= limit


class RetryPolicy:
    """When to send again and how long to wait first; see the module docstring."""

    def __init__(
        self,
        *,
        max_attempts: int = 6,
        initial_s: float = 1.0,
        max_wait_s: float = 60.0,
        no_image_attempts: int = 3,
        max_server_delay_s: float = 300.0,
        rng: random.Random | None = None,
    ) -> None:
        if max_attempts < 1 or no_image_attempts < 1:
            raise ValueError("max_attempts and no_image_attempts must be at least 1")
        if initial_s < 0 or max_wait_s < 0:
            raise ValueError("initial_s and max_wait_s cannot be negative")
        if not max_server_delay_s > 0:
            raise ValueError("max_server_delay_s must be above 0")
        self.max_server_delay_s = max_server_delay_s
        backoff = wait_full_jitter(
            initial_s=initial_s, max_wait_s=max_wait_s, rng=rng or random.Random()
        )
        self.wait = wait_at_least_server_delay(backoff)
        self.stop = stop_when_attempts_spent(max_attempts, no_image_attempts)
        self.retry = tenacity.retry_if_result(_worth_retrying)

    def next_wait(self, attempt: int, reply: ProviderReply) -> float | None:
        """Seconds to wait after `attempt` sends ended with `reply`; None to give up."""
        if not _worth_retrying(reply):
            return None
        retry_state = tenacity.RetryCallState(None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
        retry_state.attempt_number = attempt
        retry_state.set_result(reply)
        if self.stop(retry_state):
            return None
        return self.wait(retry_state)


async def send_with_retries(
    send: Callable[[], Awaitable[ProviderReply]],
    policy: RetryPolicy,
    clock: Clock,
    on_retry: OnRetry | None = None,
) -> tuple[ProviderReply, int]:
    """Send until the reply is final or the policy gives up; the last reply and the sends made.

    `on_retry(attempt, reply, wait_s)` is called before each wait. An exception from `send` is not
    retried: it propagates at once.
    """
    attempts = 0

    async def attempt() -> ProviderReply:
        nonlocal attempts
        attempts += 1
        return await send()

    retrying = tenacity.AsyncRetrying(
        retry=policy.retry,
        stop=policy.stop,
        wait=policy.wait,
        sleep=clock.sleep,
        before_sleep=None if on_retry is None else _before_sleep(on_retry),
        retry_error_callback=_reply,
        reraise=True,
    )
    reply: ProviderReply = await retrying(attempt)
    return reply, attempts


def _before_sleep(on_retry: OnRetry) -> Callable[[tenacity.RetryCallState], None]:
    def before_sleep(retry_state: tenacity.RetryCallState) -> None:
        on_retry(retry_state.attempt_number, _reply(retry_state), retry_state.upcoming_sleep)

    return before_sleep
