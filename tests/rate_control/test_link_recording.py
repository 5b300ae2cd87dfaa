"""Link recordings: what goes in comes back out, and a damaged file says where."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from telecart.cart_agent.bandwidth_estimator import LinkReport
from telecart.cart_agent.link_recording import (
    Feedback,
    LinkRecorder,
    Tick,
    WatchdogVerdict,
    read_recording,
)
from telecart.cart_agent.prober import ProbeReading
from telecart.cart_agent.transport_cc import PacketResult

EVENTS = (
    Tick(LinkReport(at=10.0, fraction_lost=0.02, rtt_s=0.16, jitter_s=0.004), 310_000, 21e3, 3e4),
    Tick(None, None, 20_500.0, 0.0),
    Feedback((PacketResult(7, 10.01, 1240, 3.5), PacketResult(8, 10.02, 300, None)), range(7, 9)),
    Feedback((PacketResult(9, 10.03, 300, 3.52),), None),
    ProbeReading(carried_bps=480_000.0, whole=True, link_bps=None, short=True),
    WatchdogVerdict("lost"),
)


async def test_every_kind_of_event_reads_back_as_recorded(tmp_path: Path) -> None:
    path = tmp_path / "link-recordings" / "call.jsonl.gz"
    recorder = LinkRecorder(path, 300_000)
    for at, event in enumerate(EVENTS):
        recorder.add(100.0 + at, event)
    await recorder.save()
    recording = read_recording(path)
    assert recording.start_bps == 300_000
    assert [r.event for r in recording.events] == list(EVENTS)
    assert [r.at for r in recording.events] == [100.0 + i for i in range(len(EVENTS))]
    assert [p.name for p in path.parent.iterdir()] == ["call.jsonl.gz"]  # no temporary left


async def test_a_recorder_keeps_only_the_newest_events(tmp_path: Path) -> None:
    recorder = LinkRecorder(tmp_path / "r.jsonl.gz", None, max_events=3)
    for at in range(5):
        recorder.add(float(at), WatchdogVerdict("connected"))
    await recorder.save()
    recording = read_recording(recorder.path)
    assert recording.start_bps is None
    assert [r.at for r in recording.events] == [2.0, 3.0, 4.0]


def test_a_damaged_line_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as out:
        out.write('{"start_bps": null}\n{"at": 1.0, "link": "lost"}\n{"at": 2.0, "what": 1}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl\.gz, line 3: not a link recording event"):
        read_recording(path)
