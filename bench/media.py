"""Media benchmark (issue 6): telecart cart vs Chrome → Chrome vs plain aiortc over rural links.

For each profile and sender: a fresh link lab, the telecart server and a headless
Chromium specialist (the real specialist page) in the clinic namespace, the sender in the
cart namespace, `--seconds` of call measured from the specialist's Accept. Prints a table
per profile (senders side by side, with ratios), one JSON line, writes a PNG per profile
into `--out`, and with `--save` the JSON into `bench/results/media-YYYY-MM-DD.json`.
docs/media-benchmark.md defines every figure.

Needs root (network namespaces), /dev/net/tun and Debian's chromium.

    .venv/bin/python bench/media.py --smoke                # good, 10 s, all senders (CI)
    .venv/bin/python bench/media.py --profiles good,step --seconds 60 --save
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench.*` when run as a script

from bench.media_fixtures import write_static
from bench.media_metrics import capacity_up_kbps, figures, timeline
from bench.media_plot import plot_profile
from bench.media_run import SENDERS, RunData, run_sender
from bench.netlab.profiles import load_profile

ALL_PROFILES = ("good", "rural-3g", "satellite", "edge", "step", "bursty", "outage")
RESULTS = Path(__file__).resolve().parent / "results"
OUT = Path(__file__).resolve().parent / "out"
SMOKE_PROFILE, SMOKE_SECONDS = "good", 10.0

# (key, label, format); ratios are telecart ÷ reference.
ROWS: list[tuple[str, str, str]] = [
    ("freeze_count", "freezes (Chromium)", "{:.0f}"),
    ("freeze_total_s", "freeze total s", "{:.1f}"),
    ("stall_count", "stalls ≥ 0.5 s", "{:.0f}"),
    ("stall_total_s", "stall total s", "{:.1f}"),
    ("fps_mean", "mean fps (room)", "{:.1f}"),
    ("height_median", "median height", "{:.0f}"),
    ("kbps_mean", "received kbit/s (RTP)", "{:.0f}"),
    ("utilisation", "link use", "{:.0%}"),
    ("g2g_p50_ms", "glass-to-glass p50 ms", "{:.0f}"),
    ("g2g_p95_ms", "glass-to-glass p95 ms", "{:.0f}"),
    ("steth_concealment", "stethoscope concealed", "{:.2%}"),
    ("voice_concealment", "voice concealed", "{:.2%}"),
    ("longest_audio_gap_ms", "longest audio gap ms", "{:.0f}"),
    ("ttff_s", "first frame s", "{:.2f}"),
    ("recovery_s", "recovery s", "{:.1f}"),
    ("rise_s", "s to 80 % of a risen link", "{:.1f}"),
    ("exam_fps_mean", "exam camera fps", "{:.1f}"),
    ("exam_height_median", "exam median height", "{:.0f}"),
    ("exam_stall_total_s", "exam stall total s", "{:.1f}"),
    ("exam_longest_stall_after_settle_s", "exam longest stall after 10 s", "{:.1f}"),
    ("exam_recovery_s", "exam recovery s", "{:.1f}"),
    ("stills_count", "exam stills received", "{:.0f}"),
    ("exam_longest_picture_gap_s", "exam longest picture gap s", "{:.1f}"),
]


def _cell(value: Any, fmt: str) -> str:
    return "–" if value is None else fmt.format(value)


def _ratio(ours: Any, theirs: Any) -> str:
    if not isinstance(ours, int | float) or not isinstance(theirs, int | float):
        return ""
    if theirs == 0:
        return "" if ours == 0 else "∞"
    return f"{ours / theirs:.2f}×"


def table(profile: str, entry: dict[str, Any]) -> str:
    senders = [s for s in SENDERS if s in entry]
    refs = [s for s in senders if s != "telecart"] if "telecart" in senders else []
    header = ["measure", *senders, *(f"telecart÷{r}" for r in refs)]
    rows = [header]
    for key, label, fmt in ROWS:
        if not any(key in entry[s] for s in senders):
            continue
        values = [entry[s].get(key) for s in senders]
        ratios = [_ratio(entry["telecart"].get(key), entry[r].get(key)) for r in refs]
        rows.append([label, *(_cell(v, fmt) for v in values), *ratios])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    title = f"{profile} (uplink capacity {entry['capacity_up_kbps']:.0f} kbit/s)"
    lines = [title, "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("-" * (sum(widths) + 2 * len(widths)))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows[1:]]
    for sender in senders:
        if "error" in entry[sender]:
            lines.append(f"{sender}: {entry[sender]['error']}")
    census = entry.get("telecart", {}).get("uplink_kbps")
    if census:  # bench/uplink_census.py
        parts = [f"{kind} {kbps:.1f}" for kind, kbps in census.items() if kbps >= 0.05]
        lines.append(f"telecart uplink, kbit/s by kind: {', '.join(parts)}")
    return "\n".join(lines)


async def _run_all(
    profiles: list[str], senders: list[str], seconds: float, out: Path, keep: bool
) -> dict[str, Any]:
    whole = int(seconds) if seconds.is_integer() else seconds
    result: dict[str, Any] = {"seconds": whole, "profiles": {}}
    workdir = Path(tempfile.mkdtemp(prefix="bench-media-"))
    try:
        wav = write_static(workdir / "static")
        for profile in profiles:
            entry: dict[str, Any] = {}
            timelines: dict[str, dict[str, Any]] = {}
            for sender in senders:
                started = time.monotonic()
                print(f"… {profile} / {sender} ({seconds:.0f} s)", file=sys.stderr, flush=True)
                try:
                    data = await run_sender(
                        profile, sender, seconds, workdir / f"{profile}-{sender}",
                        workdir / "static", wav,
                    )  # fmt: skip
                except Exception as exc:
                    data = RunData(sender, load_profile(profile), seconds, error=repr(exc))
                entry.setdefault("capacity_up_kbps", capacity_up_kbps(data))
                entry[sender] = figures(data)
                timelines[sender] = timeline(data)
                took = time.monotonic() - started
                print(f"  done in {took:.0f} s", file=sys.stderr, flush=True)
            result["profiles"][profile] = entry
            plot_profile(profile, timelines, out / f"media-{profile}.png")
            print(table(profile, entry) + "\n", flush=True)
    finally:
        if keep:
            print(f"logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return result


def smoke_failures(result: dict[str, Any]) -> list[str]:
    """Senders that never showed a frame on the `good` profile: the benchmark has rotted."""
    good = result["profiles"].get("good", {})
    return [
        f"{sender}: no video frame decoded on 'good'"
        + (f" ({good[sender]['error']})" if "error" in good[sender] else "")
        for sender in SENDERS
        if sender in good and good[sender]["ttff_s"] is None
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", default=",".join(ALL_PROFILES))
    parser.add_argument("--senders", default=",".join(SENDERS))
    parser.add_argument("--seconds", type=float, default=60.0, help="measured per run")
    parser.add_argument("--smoke", action="store_true", help="good, 10 s; fails on no frame")
    parser.add_argument("--save", action="store_true", help="write bench/results/media-DATE.json")
    parser.add_argument("--out", type=Path, default=OUT, help="folder for the PNGs")
    parser.add_argument("--keep", action="store_true", help="keep the per-run logs")
    args = parser.parse_args()
    profiles = [SMOKE_PROFILE] if args.smoke else args.profiles.split(",")
    seconds = SMOKE_SECONDS if args.smoke else args.seconds
    senders = args.senders.split(",")
    unknown = [s for s in senders if s not in SENDERS] + [
        p for p in profiles if p not in ALL_PROFILES
    ]
    if unknown:
        parser.error(f"unknown sender or profile: {', '.join(unknown)}")
    started = time.monotonic()
    try:
        result = asyncio.run(_run_all(profiles, senders, seconds, args.out, args.keep))
    except KeyboardInterrupt:
        print("interrupted; everything started has been stopped", file=sys.stderr)
        return 130
    result["measured"] = datetime.date.today().isoformat()
    result["wall_s"] = round(time.monotonic() - started)
    print(json.dumps({"bench": "media", **result}))
    if args.save:
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"media-{result['measured']}.json"
        path.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        print(f"saved {path}", file=sys.stderr)
    failures = smoke_failures(result) if args.smoke or "good" in profiles else []
    for failure in failures:
        print(f"FAIL {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
