"""What the rate controller heard from a link, recorded for replay without a network.

A technician turns on `agent.record_link` and each consultation leaves
`<data_dir>/link-recordings/<session>-<time>.jsonl.gz`: every control step (`Tick`: the
receiver report it brought, if any, and the data channels' rate), every transport-wide
feedback (the packets with their send and arrival times, and the probe cluster in
flight), every probe reading and every verdict of the media watchdog, on the
controller's clock. `link_replay.replay()` feeds one into a fresh `RateController` with
no senders, so a clinic's link, or a link-lab run, can be studied and turned into a test
(tests/rate_control/test_recorded_links.py) on any machine.

Feedback replays open loop: the packets are what the recorded call sent, not what the
replayed controller would have sent, so a replay shows how the controller reads that
link, not the call it would have made.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .atomic_file import write_atomically
from .bandwidth_estimator import LinkReport
from .prober import ProbeReading
from .transport_cc import PacketResult

# At most this many events are kept (a feedback every 50-100 ms: over an hour).
MAX_EVENTS = 100_000


@dataclass(frozen=True)
class Tick:
    """One control step's input (`RateController.tick`)."""

    report: LinkReport | None  # None: no new receiver report since the last step
    sent_bps: float | None  # what the senders put on the wire since the last step
    other_bps: float  # data channels and RTCP, smoothed (`OtherTraffic.bps`)
    other_recent_bps: float  # ... and their last second's peak


@dataclass(frozen=True)
class Feedback:
    """One transport-wide feedback as the controller took it."""

    results: tuple[PacketResult, ...]
    probe: range | None  # the transport sequence numbers of a probe cluster in flight


@dataclass(frozen=True)
class WatchdogVerdict:
    """The media watchdog's verdict (`RateController.link_changed`)."""

    state: str


Event = Tick | Feedback | ProbeReading | WatchdogVerdict


@dataclass(frozen=True)
class Recorded:
    at: float  # the controller's clock
    event: Event


@dataclass(frozen=True)
class Recording:
    start_bps: float | None  # where the call's rate control started (None: the default)
    events: tuple[Recorded, ...]


class LinkRecorder:
    """Collects a call's link events in memory; `save()` writes them off the event loop."""

    def __init__(self, path: Path, start_bps: float | None, max_events: int = MAX_EVENTS) -> None:
        self.path = path
        self.start_bps = start_bps
        self._events: deque[Recorded] = deque(maxlen=max_events)

    def add(self, at: float, event: Event) -> None:
        self._events.append(Recorded(at, event))

    def __len__(self) -> int:
        return len(self._events)

    async def save(self) -> None:
        recording = Recording(self.start_bps, tuple(self._events))
        await asyncio.to_thread(write_recording, self.path, recording)


def _encode(recorded: Recorded) -> dict[str, Any]:
    event = recorded.event
    if isinstance(event, Feedback):
        probe = event.probe
        return {
            "at": recorded.at,
            "feedback": [[r.sequence, r.send_s, r.size_bytes, r.arrival_s] for r in event.results],
            "probe": None if probe is None else [probe.start, probe.stop],
        }
    if isinstance(event, WatchdogVerdict):
        return {"at": recorded.at, "link": event.state}
    kind = "tick" if isinstance(event, Tick) else "probe_reading"
    return {"at": recorded.at, kind: asdict(event)}


def _decode(line: dict[str, Any]) -> Recorded:
    at = float(line["at"])
    if "feedback" in line:
        probe = line["probe"]
        return Recorded(
            at,
            Feedback(
                tuple(PacketResult(int(s), t, int(n), a) for s, t, n, a in line["feedback"]),
                None if probe is None else range(*probe),
            ),
        )
    if "tick" in line:
        tick = line["tick"]
        report = tick["report"]
        return Recorded(
            at,
            Tick(
                None if report is None else LinkReport(**report),
                tick["sent_bps"],
                float(tick["other_bps"]),
                float(tick["other_recent_bps"]),
            ),
        )
    if "link" in line:
        return Recorded(at, WatchdogVerdict(str(line["link"])))
    if "probe_reading" in line:
        return Recorded(at, ProbeReading(**line["probe_reading"]))
    raise ValueError(f"not a link recording event: {sorted(line)}")


def write_recording(path: Path, recording: Recording) -> None:
    """One JSON line of `start_bps`, then one per event; gzip, written whole or not at all."""
    lines = [json.dumps({"start_bps": recording.start_bps})]
    lines += [json.dumps(_encode(r), separators=(",", ":")) for r in recording.events]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, gzip.compress(("\n".join(lines) + "\n").encode()))


def read_recording(path: Path) -> Recording:
    """A recording; a malformed line is a ValueError naming the file and line."""
    events: list[Recorded] = []
    start_bps: float | None = None
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            try:
                data = json.loads(line)
                if number == 1:
                    start = data["start_bps"]
                    start_bps = None if start is None else float(start)
                else:
                    events.append(_decode(data))
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}, line {number}: {exc}") from exc
    return Recording(start_bps, tuple(events))
