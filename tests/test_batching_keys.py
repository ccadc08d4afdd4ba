"""The batch tier's keys: chunks dealt over a pool, every call for a chunk made with the key its ledger
names (a fake where each key is a project of its own), a key failing authentication dropped."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import anyio
import httpx
import pytest
from batch_fake import BASE, FakeBatchApi
from test_batching_advance import IDS, Target, plan

from batchrun.batching.advance import AdvanceReport, PollSchedule, advance
from batchrun.batching.exchange import BatchApi, BatchApiError
from batchrun.batching.fallback import FallbackPolicy, SwitchReport, switch
from batchrun.batching.keys import BatchKey, BatchKeys
from batchrun.batching.ledger import ChunkState, Ledger, Phase
from batchrun.records import Outcome
from batchrun.running.clock import FakeClock
from batchrun.simulator.replies import bad_key_error, google_error

KEYS = {"KEY_A": "ka", "KEY_B": "kb", "KEY_C": "kc"}


class ProjectsFake:
    """The batch fake behind a door where each key is a project: files and batches are seen only with the
    key that made them (403 otherwise), listings show a key's own, and a key in `bad` gets 400 API_KEY_INVALID."""

    def __init__(self, fake: FakeBatchApi) -> None:
        self.fake = fake
        self.owner: dict[str, str] = {}  # files/.. or batches/.. -> the key value that made it
        self.bad: set[str] = set()
        self.calls: list[tuple[str, str, str | None]] = []  # (route, key, resource) of each call let through

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handle))

    def handle(self, request: httpx.Request) -> httpx.Response:
        key = request.headers["x-goog-api-key"]
        if key in self.bad:
            return httpx.Response(400, json=bad_key_error())
        route, _ = self.fake._route(request)
        resource = _resource(route, request)
        if resource is not None and self.owner.get(resource, key) != key:
            return httpx.Response(403, json=google_error(403, "PERMISSION_DENIED", f"no access to {resource}"))
        self.calls.append((route, key, resource))
        before = set(self.fake.batches)
        response = self.fake.handle(request)
        for made in set(self.fake.batches) - before:  # made even when the reply is lost on the way
            self.owner[made] = key
        self._claim(route, key, response)
        return _own_listing(response, key, self.owner) if route == "list" else response

    def _claim(self, route: str, key: str, response: httpx.Response) -> None:
        if route not in ("upload", "create", "get") or not response.is_success or not response.content:
            return
        body = response.json()
        if route == "upload" and "file" in body:
            self.owner[body["file"]["name"]] = key
        results = (body.get("response") or {}).get("responsesFile")
        if results:
            self.owner[results] = self.owner[body["name"]]

    def keys_used(self, route: str) -> list[str]:
        return [key for r, key, _ in self.calls if r == route]


def _resource(route: str, request: httpx.Request) -> str | None:
    path = request.url.path
    if route == "create":
        return json.loads(request.content)["batch"]["input_config"]["file_name"]
    if route == "download":
        return path.removeprefix("/download/v1beta/").removesuffix(":download")
    if route in ("get", "cancel"):
        return path.removeprefix("/v1beta/").removesuffix(":cancel")
    return None


def _own_listing(response: httpx.Response, key: str, owner: dict[str, str]) -> httpx.Response:
    page: dict[str, Any] = response.json()
    page["operations"] = [op for op in page["operations"] if owner.get(op["name"]) == key]
    return httpx.Response(200, json=page)


def pool(client: httpx.AsyncClient, *envs: str) -> BatchKeys:
    return BatchKeys([BatchKey(env, BatchApi(client, BASE, KEYS[env])) for env in envs])


class Run:
    """A projects fake, a fake clock and a target that outlive 'processes' (each pass builds its keys)."""

    def __init__(self, fake: FakeBatchApi | None = None) -> None:
        self.server = ProjectsFake(fake or FakeBatchApi())
        self.clock, self.target = FakeClock(), Target()

    def one_pass(self, ledger: Ledger, schedule: PollSchedule, envs: tuple[str, ...]) -> AdvanceReport:
        async def main():
            async with self.server.client() as client:
                return await advance(pool(client, *envs), ledger, self.clock, self.target, schedule=schedule)
        return anyio.run(main)

    def until_done(self, ledger: Ledger, envs: tuple[str, ...], passes: int = 30) -> list[AdvanceReport]:
        schedule = PollSchedule()
        reports = []
        for _ in range(passes):
            reports.append(self.one_pass(ledger, schedule, envs))
            if not reports[-1].still_running:
                return reports
            self.clock.advance(max(1.0, (reports[-1].next_poll_at or 0) - self.clock.now()))
        raise AssertionError("batches still running")


def key_envs(ledger: Ledger) -> list[str | None]:
    return [chunk.key_env for chunk in ledger.read().chunks.values()]


def uploading_lines(ledger: Ledger) -> list[dict[str, Any]]:
    return [line for line in map(json.loads, ledger.path.read_text().splitlines()) if line["event"] == "uploading"]


def chunk(chunk_id: str, phase: Phase, count: int, key_env: str | None) -> ChunkState:
    return ChunkState(chunk_id, chunk_id, "m", f"{chunk_id}.ids", count, 0, phase=phase, key_env=key_env)


def test_chunks_not_yet_sent_go_to_the_key_holding_fewest_requests_in_pool_order_on_a_tie():
    keys = BatchKeys([BatchKey(env, BatchApi(httpx.AsyncClient(), BASE, value)) for env, value in KEYS.items()])
    held = keys.held([chunk("c1", Phase.CREATED, 5, "KEY_A"), chunk("c2", Phase.COLLECTED, 9, "KEY_B"),
                      chunk("c3", Phase.UPLOADED, 2, None)])  # None: a 0.6.0 chunk, the first key's
    assert {key.env: count for key, count in held.items()} == {"KEY_A": 7, "KEY_B": 0, "KEY_C": 0}
    assert [keys.deal(held, 4).env for _ in range(4)] == ["KEY_B", "KEY_C", "KEY_B", "KEY_C"]


def test_a_chunk_is_polled_with_the_key_its_ledger_names_and_one_of_0_6_0_with_the_first():
    keys = BatchKeys([BatchKey(env, BatchApi(httpx.AsyncClient(), BASE, value)) for env, value in KEYS.items()])
    assert keys.of(chunk("c", Phase.CREATED, 1, "KEY_C")).env == "KEY_C"
    assert keys.of(chunk("c", Phase.CREATED, 1, None)).env == "KEY_A"
    with pytest.raises(BatchApiError, match="list KEY_D again"):
        keys.of(chunk("c", Phase.CREATED, 1, "KEY_D"))


def test_a_pool_of_one_polls_with_its_key_whatever_variable_the_ledger_names():
    keys = BatchKeys.single(BatchApi(httpx.AsyncClient(), BASE, "ka"), "GEMINI_API_KEY")
    assert keys.of(chunk("c", Phase.CREATED, 1, "OLD_NAME")) is keys.first


def test_chunks_are_dealt_round_robin_and_every_call_for_a_chunk_uses_its_key(tmp_path):
    run = Run()
    ledger = Ledger(tmp_path)
    plan(tmp_path, ledger, max_requests=1)
    run.until_done(ledger, ("KEY_A", "KEY_B", "KEY_C"))
    assert key_envs(ledger) == ["KEY_A", "KEY_B", "KEY_C", "KEY_A", "KEY_B"]
    assert all(c.phase is Phase.COLLECTED for c in ledger.read().chunks.values())
    assert sorted(rid for rid, _ in run.target.accepted) == IDS
    for route in ("upload_start", "create", "download"):
        assert Counter(run.server.keys_used(route)) == {"ka": 2, "kb": 2, "kc": 1}, route
    assert Counter(run.server.keys_used("get")) == {"ka": 4, "kb": 4, "kc": 2}  # two polls a batch
    assert all(run.server.owner.get(resource, key) == key for _, key, resource in run.server.calls)


def test_the_ledger_names_each_chunks_key_by_its_variable_never_by_its_value(tmp_path):
    run = Run()
    ledger = Ledger(tmp_path)
    plan(tmp_path, ledger)
    run.until_done(ledger, ("KEY_A", "KEY_B"))
    text = ledger.path.read_text()
    assert [line["key_env"] for line in uploading_lines(ledger)] == ["KEY_A", "KEY_B", "KEY_A"]
    assert not any(value in text for value in ('"ka"', '"kb"'))


def test_a_later_run_polls_and_collects_each_batch_with_its_own_key_whatever_the_pools_order(tmp_path):
    run = Run()
    ledger = Ledger(tmp_path)
    plan(tmp_path, ledger)
    first = run.one_pass(ledger, PollSchedule(), ("KEY_A", "KEY_B"))
    assert len(first.submitted) == 3
    reports = run.until_done(ledger, ("KEY_C", "KEY_B", "KEY_A"))  # a resumed run, the pool reordered and grown
    assert not any(report.problems for report in reports)
    assert sorted(rid for rid, _ in run.target.accepted) == IDS
    assert Counter(run.server.keys_used("get")) == {"ka": 4, "kb": 2}
    assert "kc" not in run.server.keys_used("download")


def test_a_ledger_written_by_0_6_0_is_polled_and_collected_with_the_first_key(tmp_path):
    run = Run()
    ledger = Ledger(tmp_path)
    plan(tmp_path, ledger)

    async def old_pass():  # 0.6.0: one BatchApi, the first key, no variable named
        async with run.server.client() as client:
            return await advance(BatchApi(client, BASE, "ka"), ledger, run.clock, run.target)
    anyio.run(old_pass)
    assert key_envs(ledger) == [None, None, None]
    run.until_done(ledger, ("KEY_A", "KEY_B"))
    assert sorted(rid for rid, _ in run.target.accepted) == IDS
    assert set(run.server.keys_used("get")) == set(run.server.keys_used("download")) == {"ka"}


def test_a_key_that_fails_authentication_at_submit_is_dropped_once_and_its_chunk_goes_to_another(tmp_path, caplog):
    run = Run()
    run.server.bad = {"kb"}
    ledger = Ledger(tmp_path)
    plan(tmp_path, ledger, max_requests=1)
    with caplog.at_level("WARNING"):
        run.until_done(ledger, ("KEY_A", "KEY_B", "KEY_C"))
    assert key_envs(ledger) == ["KEY_A", "KEY_C", "KEY_A", "KEY_C", "KEY_A"]
    assert [line.get("key_env") for line in uploading_lines(ledger)][:3] == ["KEY_A", "KEY_B", "KEY_C"]
    assert sorted(rid for rid, _ in run.target.accepted) == IDS
    assert sorted(Counter(run.server.fake.creates).values()) == [1] * 5
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "KEY_B failed authentication" in warnings[0] and "KEY_A, KEY_C" in warnings[0]
    assert "kb" not in warnings[0]


def test_a_chunk_uploaded_with_a_key_that_then_fails_at_create_is_uploaded_again_with_its_new_key(tmp_path):
    run = Run()
    ledger = Ledger(tmp_path)
    plan(tmp_path, ledger, max_requests=5)
    run.server.fake.faults = {"create": [401]}
    run.one_pass(ledger, PollSchedule(), ("KEY_A", "KEY_B"))
    [only] = ledger.read().chunks.values()
    assert (only.key_env, only.phase) == ("KEY_B", Phase.CREATED)
    assert run.server.keys_used("upload_start") == ["ka", "kb"]
    assert run.server.owner[run.server.fake.batches[only.batch_name].file_name] == "kb"


def test_a_key_that_fails_at_poll_returns_its_batches_to_pending_and_the_rest_are_collected(tmp_path, caplog):
    run = Run()
    ledger = Ledger(tmp_path)
    plan(tmp_path, ledger)
    run.one_pass(ledger, PollSchedule(), ("KEY_A", "KEY_B"))
    run.server.bad = {"kb"}  # revoked while its batch runs
    with caplog.at_level("WARNING"):
        reports = run.until_done(ledger, ("KEY_A", "KEY_B"))
    chunks = list(ledger.read().chunks.values())
    assert [(c.key_env, c.phase) for c in chunks] == [("KEY_A", Phase.COLLECTED), ("KEY_B", Phase.RETURNED),
                                                      ("KEY_A", Phase.COLLECTED)]
    assert chunks[1].reason == "its key, in KEY_B, failed authentication"
    assert reports[0].lost_to_keys == {"KEY_B": 2}
    assert sorted(rid for rid, _ in run.target.accepted) == ["r0", "r1", "r4"]
    assert sum("KEY_B failed authentication" in r.getMessage() for r in caplog.records) == 1


def test_every_key_failing_authentication_stops_the_pass_as_one_key_does(tmp_path):
    run = Run()
    run.server.bad = {"ka", "kb"}
    ledger = Ledger(tmp_path)
    plan(tmp_path, ledger)
    with pytest.raises(BatchApiError) as caught:
        run.one_pass(ledger, PollSchedule(), ("KEY_A", "KEY_B"))
    assert caught.value.reply.outcome is Outcome.STOP_AUTH


def test_a_pools_error_names_the_variable_of_the_key_it_was_made_with():
    async def refused():
        async with ProjectsFake(FakeBatchApi()).client() as client:
            api = BatchApi(client, BASE, "kb", key_env="KEY_B")
            await api.send("poll of batches/b1", "GET", api.url("/v1beta/batches/b1"))
    with pytest.raises(BatchApiError, match="^poll of batches/b1 with the key in KEY_B: "):
        anyio.run(refused)


def test_a_create_whose_reply_was_lost_is_found_in_its_own_keys_listing_and_adopted(tmp_path):
    run = Run(FakeBatchApi(lost_create_replies=1))
    ledger = Ledger(tmp_path)
    plan(tmp_path, ledger, max_requests=5)
    run.one_pass(ledger, PollSchedule(), ("KEY_A", "KEY_B"))
    [caught] = ledger.read().chunks.values()
    assert caught.phase is Phase.CREATING
    report = run.one_pass(ledger, PollSchedule(), ("KEY_B", "KEY_A"))
    assert report.adopted == [caught.chunk_id]
    assert run.server.fake.creates == [caught.display_name]
    assert run.server.keys_used("list") == ["ka"]


class FallbackTargetFake(Target):
    def unanswered(self, request_ids):
        answered = {rid for rid, _ in self.accepted}
        return [rid for rid in request_ids if rid not in answered]

    def worst_case_usd(self, request_ids):
        return 0.0


def test_the_fallback_cancels_each_batch_with_its_own_key(tmp_path):
    run = Run(FakeBatchApi(states=["BATCH_STATE_RUNNING"]))
    run.target = FallbackTargetFake()
    ledger = Ledger(tmp_path)
    plan(tmp_path, ledger)
    run.one_pass(ledger, PollSchedule(), ("KEY_A", "KEY_B"))
    report = SwitchReport()

    async def give_up():
        async with run.server.client() as client:
            due = ledger.read().in_phase(Phase.CREATED)
            await switch(pool(client, "KEY_B", "KEY_A"), ledger, run.clock, run.target, due,
                         FallbackPolicy(grace_s=0.0), report)
    anyio.run(give_up)
    assert report.problems == []
    assert Counter(run.server.keys_used("cancel")) == {"ka": 2, "kb": 1}
    assert sorted(report.send) == IDS
