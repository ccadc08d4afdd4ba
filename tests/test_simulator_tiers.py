"""The simulator's service tiers: serviceTier checked, the served tier reported, flex slower and shed, priority downgraded."""

from __future__ import annotations

import json
import math

import pytest

from batchrun.simulator.core import SimulatorCore
from batchrun.simulator.faults import FaultConfig
from batchrun.simulator.tiers import TierDecision, decide_tier

N = 2000
RATE = 0.1
TOLERANCE = 4.5 * math.sqrt(N * RATE * (1 - RATE))  # as in test_simulator_core: seeded, so exact on every run
MODEL = "gemini-2.5-flash"


def body(tier: str | None = None, **extra) -> bytes:
    sent: dict = {"contents": [{"role": "user", "parts": [{"text": "Describe a blue mug."}]}], **extra}
    if tier is not None:
        sent["serviceTier"] = tier
    return json.dumps(sent).encode()


def make_core(**config) -> SimulatorCore:
    return SimulatorCore(FaultConfig.model_validate(config), 0, clock=lambda: 1_800_000_000.0)


def call(core: SimulatorCore, sent: bytes, rpc: str = "generateContent", query: dict | None = None):
    return core.handle("POST", f"/v1beta/models/{MODEL}:{rpc}", query or {}, {}, sent)


@pytest.mark.parametrize("tier", ["standard", "flex", "priority"])
def test_a_named_tier_is_served_and_reported_in_usage_and_header(tier):
    reply = call(make_core(), body(tier))
    assert reply.status == 200
    assert json.loads(reply.body)["usageMetadata"]["serviceTier"] == tier
    assert reply.headers == {"x-gemini-service-tier": tier}


def test_a_request_naming_no_tier_gets_the_reply_it_always_got():
    reply = call(make_core(), body())
    assert reply.status == 200 and reply.headers == {}
    assert "serviceTier" not in json.loads(reply.body)["usageMetadata"]


@pytest.mark.parametrize("tier", ["FLEX", "Flex", "SERVICE_TIER_FLEX", "batch", "", 1])
def test_any_other_spelling_is_a_400_invalid_argument(tier):
    reply = call(make_core(), body(tier))
    error = json.loads(reply.body)["error"]
    assert (reply.status, error["status"], reply.outcome) == (400, "INVALID_ARGUMENT", "invalid")
    assert "lowercase" in error["message"]


def test_a_streamed_flex_reply_reports_its_tier_in_the_last_event():
    reply = call(make_core(), body("flex"), rpc="streamGenerateContent", query={"alt": "sse"})
    last = json.loads(reply.events[-1].removeprefix(b"data: "))
    assert last["usageMetadata"]["serviceTier"] == "flex"


def test_flex_requests_wait_the_flex_latency_and_others_do_not():
    core = make_core(flex={"latency": {"distribution": "fixed", "ms": 1500}})
    assert [call(core, body(tier)).delay_s for tier in ("flex", "standard", None, "priority")] == [1.5, 0, 0, 0]


@pytest.mark.parametrize("status, error_status", [(503, "UNAVAILABLE"), (429, "RESOURCE_EXHAUSTED")])
def test_flex_capacity_errors_shed_flex_requests_at_their_rate(status, error_status):
    core = make_core(flex={"capacity": RATE, "capacity_status": status})
    replies = [call(core, body("flex")) for _ in range(N)]
    shed = [r for r in replies if r.status == status]
    assert abs(len(shed) - N * RATE) <= TOLERANCE
    assert {json.loads(r.body)["error"]["status"] for r in shed} == {error_status}
    assert {r.outcome for r in shed} == {"flex_shed"}
    assert all(r.status == 200 for r in replies if r not in shed)
    assert all(call(core, body("standard")).status == 200 for _ in range(200))  # standard is never shed


def test_a_flex_capacity_schedule_sheds_the_first_requests():
    core = make_core(flex={"capacity": {"first": 2}})
    assert [call(core, body("flex")).status for _ in range(4)] == [503, 503, 200, 200]


def test_a_share_of_priority_requests_is_served_at_standard():
    core = make_core(priority_downgrade=RATE)
    served = [json.loads(call(core, body("priority")).body)["usageMetadata"]["serviceTier"] for _ in range(N)]
    assert abs(served.count("standard") - N * RATE) <= TOLERANCE
    assert set(served) == {"standard", "priority"}


def test_tier_decisions_are_seeded_and_leave_requests_naming_no_tier_alone():
    config = FaultConfig.model_validate({"priority_downgrade": 0.5, "flex": {"capacity": 0.5}})
    assert [decide_tier(config, 7, n, "priority") for n in range(50)] == \
           [decide_tier(config, 7, n, "priority") for n in range(50)]
    assert decide_tier(config, 7, 3, None) == TierDecision(None)
    assert decide_tier(config, 7, 3, "standard") == TierDecision("standard")
