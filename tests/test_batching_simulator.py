"""The batch client against the simulator's own Batch Mode and Files API (in process, one fake clock):
the two halves, built side by side from the reference, agree on the wire."""

from __future__ import annotations

from collections import Counter

import anyio
import httpx
import yaml

from batchrun.batching.advance import AdvanceReport, PollSchedule, advance
from batchrun.batching.chunks import ChunkLimits, write_chunks
from batchrun.batching.exchange import BatchApi
from batchrun.batching.ledger import Ledger, Phase
from batchrun.providers.gemini import GeminiProvider
from batchrun.records import Outcome, ProviderReply, RequestRecord
from batchrun.rendered import rendered_request
from batchrun.running.clock import FakeClock
from batchrun.simulator.requestlog import read_request_log
from batchrun.simulator.transport import SimulatorTransport

BASE = "http://simulator.batchrun.invalid"
MODEL = "gemini-2.5-flash"
IDS = [f"r{n}" for n in range(5)]


class Target:
    def __init__(self) -> None:
        self.accepted: list[tuple[str, ProviderReply]] = []

    def wants_image(self, request_id: str) -> bool:
        return False

    def accept(self, request_id: str, reply: ProviderReply) -> None:
        self.accepted.append((request_id, reply))


def records() -> list[RequestRecord]:
    return [RequestRecord(request_id=rid, seq=n, model=MODEL, variables={},
                          body=rendered_request(None, [{"text": f"Write one line about topic {n}."}], {}, None, {}))
            for n, rid in enumerate(IDS)]


def run_to_the_end(tmp_path, batch_settings: dict) -> tuple[Ledger, Target, list[AdvanceReport], list[dict]]:
    faults = tmp_path / "faults.yaml"
    faults.write_text(yaml.safe_dump({"batch": batch_settings}))
    clock = FakeClock()
    log_path = tmp_path / "requests.jsonl"
    transport = SimulatorTransport(faults_file=str(faults), request_log=str(log_path), clock=clock.now)
    ledger, target, schedule = Ledger(tmp_path), Target(), PollSchedule()
    encode = GeminiProvider(BASE, None, spec_dir=tmp_path).encode_body
    for chunk in write_chunks(records(), encode, tmp_path, "job", ChunkLimits(max_requests=2)).chunks:
        ledger.planned(chunk)

    async def passes() -> list[AdvanceReport]:
        reports: list[AdvanceReport] = []
        async with httpx.AsyncClient(transport=transport) as client:  # closing it closes the simulator
            api = BatchApi(client, BASE, None)
            for _ in range(20):
                reports.append(await advance(api, ledger, clock, target, schedule=schedule))
                if not reports[-1].still_running:
                    break
                clock.advance(max(1.0, (reports[-1].next_poll_at or 0) - clock.now()))
        return reports

    reports = anyio.run(passes)
    return ledger, target, reports, read_request_log(log_path)


def test_chunks_go_through_upload_create_poll_and_collect_at_the_simulator(tmp_path):
    ledger, target, reports, log = run_to_the_end(tmp_path, {"pending_s": 5, "running_s": 20})

    assert not reports[-1].still_running
    assert sorted(rid for rid, _ in target.accepted) == IDS
    assert {reply.outcome for _, reply in target.accepted} == {Outcome.OK}
    assert all(reply.text and reply.usage.total for _, reply in target.accepted)
    assert all(chunk.phase is Phase.COLLECTED for chunk in ledger.read().chunks.values())
    rpcs = Counter(line["rpc"] for line in log)
    assert (rpcs["batches.create"], rpcs["files.upload.start"], rpcs["batch.line"]) == (3, 3, 5)
    assert rpcs["files.download"] == 3


def test_a_key_missing_from_the_results_is_not_collected_and_said_missing(tmp_path):
    _, target, reports, _ = run_to_the_end(tmp_path, {"pending_s": 0, "running_s": 1, "missing_key": {"first": 1}})

    collected = sorted(rid for rid, _ in target.accepted)
    missing = sorted(rid for report in reports for summary in report.collected.values() for rid in summary.missing)
    assert missing and sorted(collected + missing) == IDS and not set(collected) & set(missing)
