"""The keys of a batch run: which key a new chunk is sent with, and the key every later call for it uses.

In:  one `BatchKey` per key of `provider.api_key_env` (the variable's name and a `BatchApi` built with
     the key), in the pool's order; the ledger's chunks (each names the variable it was uploaded with).
Out: the key of a chunk (its ledger's, or the pool's first for a ledger of 0.6.0, which names none),
     and a key for each chunk not yet sent: the usable key holding the fewest requests in flight (in
     pool order on a tie), so chunks of equal size go round robin.

Invariants: a chunk's file, batch, polls, results download and cancel all use the one key it was
uploaded with (a batch and its files belong to that key's project); a key that fails authentication
is dropped for the run with one warning naming its variable, never the key, and only while another
key can still send: the last usable key's failure is the run's, as with a single key.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..records import Outcome, ProviderReply
from .exchange import BatchApi, BatchApiError
from .ledger import ChunkState, Phase

log = logging.getLogger(__name__)

_HELD = (Phase.UPLOADING, Phase.UPLOADED, Phase.CREATING, Phase.CREATED)  # phases that hold a key's requests


@dataclass(eq=False)
class BatchKey:
    """One key of the pool: the variable it was read from (None: a provider that needs no key), its API."""

    env: str | None
    api: BatchApi
    dropped: bool = False

    @property
    def name(self) -> str:
        return self.env or "the key"


class BatchKeys:
    """The keys of a batch run; see the module docstring."""

    def __init__(self, keys: Sequence[BatchKey]) -> None:
        if not keys:
            raise ValueError("a batch run needs at least one key")
        self.keys = list(keys)
        self._by_env = {key.env: key for key in self.keys}

    @classmethod
    def single(cls, api: BatchApi, env: str | None = None) -> BatchKeys:
        """One key: a run that behaves as it did before key pools."""
        return cls([BatchKey(env, api)])

    @property
    def first(self) -> BatchKey:
        return self.keys[0]

    def of(self, chunk: ChunkState) -> BatchKey:
        """The key a chunk was uploaded with; BatchApiError when the pool no longer lists its variable."""
        if chunk.key_env is None or len(self.keys) == 1:
            return self.first  # 0.6.0 sent every batch with the first key; one key: its variable may be renamed
        key = self._by_env.get(chunk.key_env)
        if key is None:
            raise BatchApiError("finding its key", ProviderReply(
                Outcome.RETRY, error_kind="key_not_listed",
                error_message=f"its batch was sent with the key in {chunk.key_env}, which provider.api_key_env no "
                              f"longer lists: list {chunk.key_env} again to poll and collect it"))
        return key

    def usable(self) -> list[BatchKey]:
        return [key for key in self.keys if not key.dropped]

    def deal(self, held: dict[BatchKey, int], count: int) -> BatchKey:
        """The usable key holding the fewest requests (pool order on a tie), charged `count` more."""
        key = min(self.usable(), key=lambda candidate: held.get(candidate, 0))
        held[key] = held.get(key, 0) + count
        return key

    def held(self, chunks: Iterable[ChunkState]) -> dict[BatchKey, int]:
        """Requests each usable key holds in chunks uploaded and not yet collected or returned."""
        held = {key: 0 for key in self.usable()}
        for chunk in chunks:
            if chunk.phase in _HELD and (key := self._by_env.get(chunk.key_env or self.first.env)) in held:
                held[key] += chunk.count
        return held

    def drop(self, key: BatchKey, exc: BatchApiError) -> bool:
        """A key failed authentication: drop it for the run if another key can send; whether one can."""
        others = [other for other in self.usable() if other is not key]
        if key.dropped:
            return bool(others)
        if not others:
            return False
        key.dropped = True
        log.warning("the key in %s failed authentication (%s): dropped for this run; batches go on with %s",
                    key.name, exc.reply.error_message or exc.reply.error_kind, ", ".join(k.name for k in others))
        return True


def as_keys(api: BatchApi | BatchKeys) -> BatchKeys:
    """The keys of a call given one `BatchApi` (a run of one key) or the pool's."""
    return api if isinstance(api, BatchKeys) else BatchKeys.single(api)


def fails_auth(exc: BatchApiError) -> bool:
    return exc.reply.outcome is Outcome.STOP_AUTH
