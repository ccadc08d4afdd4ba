"""Saving a finished exchange: fan-out to rows that share the request, cost counted once, name fallback."""

from __future__ import annotations

import errno
from dataclasses import dataclass, field

import pytest

from batchrun.output.images import ImageFile
from batchrun.records import Outcome, ProviderReply, RequestRecord, RowTarget, Usage
from batchrun.running.pool import ConfigProbe
from batchrun.running.saving import Finished, save_finished


@dataclass
class FakeSink:
    """Records what is written; raises `fail` for the image names listed in `refuse`."""

    images: list[tuple[str | None, str]] = field(default_factory=list)
    results: list = field(default_factory=list)
    refuse: dict[str, OSError] = field(default_factory=dict)

    def write_image(self, data, mime, output_name, row_id):
        if output_name in self.refuse:
            raise self.refuse[output_name]
        self.images.append((output_name, row_id))
        return ImageFile(f"images/{output_name or row_id}.png", "h" * 64, mime, len(data), 8, 8)

    def write_result(self, result):
        self.results.append(result)


def finished(shares=(), status="ok", image=b"png") -> Finished:
    record = RequestRecord(request_id="req", row_id="own", seq=0, model="m", body={}, variables={},
                           output_name="S", shares=tuple(shares))
    reply = ProviderReply(Outcome.OK, http_status=200, image=image, image_mime="image/png",
                          usage=Usage(prompt=10, output_image=1120, total=1130))
    return Finished(record, reply, status, 1, 1.0, 2.0, 0.039)


def test_each_row_gets_its_own_file_and_row_and_only_the_paying_row_carries_cost_and_tokens():
    sink = FakeSink()
    save_finished(sink, finished([RowTarget("m", "M"), RowTarget("l", "L")]))
    assert sink.images == [("S", "own"), ("M", "m"), ("L", "l")]
    got = [(r.row_id, r.request_id, r.image_path, r.cost_usd, r.total_tokens, r.shared_from) for r in sink.results]
    assert got == [("own", "req", "images/S.png", 0.039, 1130, None),
                   ("m", "req", "images/M.png", 0.0, None, "own"),
                   ("l", "req", "images/L.png", 0.0, None, "own")]


def test_a_save_cut_short_by_a_full_disk_goes_on_where_it_stopped():
    sink = FakeSink(refuse={"M": OSError(errno.ENOSPC, "No space left on device")})
    done = finished([RowTarget("m", "M"), RowTarget("l", "L")])
    with pytest.raises(OSError):
        save_finished(sink, done)
    assert done.saved == 1
    sink.refuse = {}
    save_finished(sink, done)
    assert [r.row_id for r in sink.results] == ["own", "m", "l"]


def test_a_name_the_file_system_refuses_at_write_time_is_saved_under_the_row_id():
    sink = FakeSink(refuse={"S": OSError(errno.ENAMETOOLONG, "File name too long")})
    save_finished(sink, finished())
    assert sink.images == [(None, "own")]
    assert sink.results[0].image_path == "images/own.png"


def test_a_reply_that_is_not_ok_writes_no_image():
    sink = FakeSink()
    save_finished(sink, finished([RowTarget("m", "M")], status="blocked"))
    assert sink.images == [] and [r.status for r in sink.results] == ["blocked", "blocked"]


def exchange(status: str, http_status: int | None, error_kind: str | None) -> Finished:
    done = finished(status=status)
    done.reply = ProviderReply(Outcome.INVALID if status == "invalid" else Outcome.OK,
                               http_status=http_status, error_kind=error_kind)
    return done


def test_the_config_probe_trips_on_three_404s_before_any_other_final_reply():
    probe = ConfigProbe()
    for _ in range(3):
        assert probe.hold(exchange("invalid", 404, "not_found"))
    assert probe.tripped and len(probe.held) == 3


def test_one_ok_reply_clears_the_probe_and_the_held_replies_are_released_to_be_recorded():
    probe = ConfigProbe()
    assert probe.hold(exchange("invalid", 400, "invalid_request"))
    assert not probe.hold(exchange("ok", 200, None))
    assert not probe.tripped and probe.cleared
    assert len(probe.release()) == 1
    assert not probe.hold(exchange("invalid", 404, "not_found"))


@pytest.mark.parametrize("status, http_status, kind", [("failed", 503, "unavailable"),
                                                       ("invalid", None, "input_changed")])
def test_replies_that_say_nothing_about_the_endpoint_are_not_held(status, http_status, kind):
    probe = ConfigProbe()
    assert not probe.hold(exchange(status, http_status, kind))
    assert not probe.tripped and not probe.cleared
