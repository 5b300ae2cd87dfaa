"""Stethoscope fidelity benchmark (issue 9): telecart vs Chrome → Chrome vs plain aiortc.

A looping synthetic heart-then-lung signal (bench/stethoscope_signal.py) is sent by each
sender over each link profile with the media benchmark's machinery (bench/media_run.py);
the specialist page records the decoded stethoscope track, which is aligned to the source
and compared: band levels (20–40, 40–80, 80–200, 200–1000 Hz, dB received − source),
envelope correlation r for the heart and lung sections, and the longest gap. Goals: every
band within ±3 dB, both r ≥ 0.9. docs/stethoscope-benchmark.md defines every figure.

Needs root (network namespaces), /dev/net/tun and Debian's chromium.

    .venv/bin/python bench/stethoscope.py --smoke          # good, 20 s, telecart (CI)
    .venv/bin/python bench/stethoscope.py --profiles good,rural-3g --seconds 45 --save
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

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench.*` when run as a script

from bench.media import ALL_PROFILES
from bench.media_fixtures import write_static
from bench.media_metrics import longest_audio_gap_ms
from bench.media_run import SENDERS, RunData, run_sender
from bench.stethoscope_analysis import BANDS_HZ, fidelity
from bench.stethoscope_probe import RECORDER_PROBE, recorded_pcm
from bench.stethoscope_signal import as_float, source_loop, write_wav
from bench.stethoscope_source import SOURCE_ENV
from telecart.devices.audio_chunk import SAMPLE_RATE

RESULTS = Path(__file__).resolve().parent / "results"
SMOKE_PROFILE, SMOKE_SENDER, SMOKE_SECONDS = "good", "telecart", 20.0
BAND_GOAL_DB, R_GOAL = 3.0, 0.9
BAND_KEYS = [f"{low:.0f}-{high:.0f}" for low, high in BANDS_HZ]


def run_figures(data: RunData, loop: npt.NDArray[np.float64]) -> dict[str, Any]:
    """The reported figures of one run (`loop`: the source as floats)."""
    pcm = recorded_pcm(data.probe)
    result = fidelity(pcm, loop) if pcm.size else None
    if result is None:
        return {"error": "nothing of the source was received", "recorded_s": pcm.size / SAMPLE_RATE}
    end_ms = data.accepted_at_ms + data.seconds * 1000
    concealed = longest_audio_gap_ms(data, "stethoscope", end_ms)
    figures: dict[str, Any] = {
        "band_db": dict(zip(BAND_KEYS, (round(b, 2) for b in result.band_db), strict=True)),
        "r_heart": result.r["heart"],
        "r_lung": result.r["lung"],
        "silent_gap_ms": result.silent_gap_ms,
        "concealed_gap_ms": concealed,
        "longest_gap_ms": max(result.silent_gap_ms, concealed or 0.0),
        "recorded_s": round(pcm.size / SAMPLE_RATE, 2),
        "analysed_s": round(result.analysed_s, 2),
        "found_fraction": round(result.found_fraction, 3),
    }
    figures["pass"] = meets_goals(figures)
    return figures


def meets_goals(figures: dict[str, Any]) -> bool:
    bands_ok = all(abs(v) <= BAND_GOAL_DB for v in figures["band_db"].values())
    r_values = (figures["r_heart"], figures["r_lung"])
    return bands_ok and all(r is not None and r >= R_GOAL for r in r_values)


def _cell(value: Any, fmt: str) -> str:
    return "–" if value is None else fmt.format(value)


def table(result: dict[str, Any]) -> str:
    """The runs as a text table like shared/REFERENCE-LINKS.md's, with the verdict."""
    header = ["profile", "sender", *(f"{k} Hz" for k in BAND_KEYS)]
    header += ["r heart", "r lung", "longest gap ms", "analysed s", "goals"]
    rows = [header]
    for profile, entry in result["profiles"].items():
        for sender, f in entry.items():
            if "error" in f:
                rows.append([profile, sender, f"error: {f['error']}"])
                continue
            bands = [f"{f['band_db'][k]:+.1f}" for k in BAND_KEYS]
            rows.append([
                profile, sender, *bands, _cell(f["r_heart"], "{:.3f}"),
                _cell(f["r_lung"], "{:.3f}"), f"{f['longest_gap_ms']:.0f}",
                f"{f['analysed_s']:.0f}", "PASS" if f["pass"] else "FAIL",
            ])  # fmt: skip
    widths = [max(len(r[i]) for r in rows if i < len(r)) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) for row in rows]
    lines.insert(1, "-" * (sum(widths) + 2 * len(widths)))
    goal = f"goals: every band within ±{BAND_GOAL_DB:.0f} dB of the source, r ≥ {R_GOAL}"
    return "\n".join([*lines, goal])


async def _run_all(
    profiles: list[str], senders: list[str], seconds: float, keep: bool
) -> dict[str, Any]:
    whole = int(seconds) if seconds.is_integer() else seconds
    result: dict[str, Any] = {"seconds": whole, "profiles": {}}
    workdir = Path(tempfile.mkdtemp(prefix="bench-stethoscope-"))
    try:
        static = workdir / "static"
        write_static(static)  # the Chrome sender's page
        samples = source_loop()
        wav = static / "bench-stethoscope.wav"
        write_wav(wav, samples)
        loop = as_float(samples)
        for profile in profiles:
            entry: dict[str, Any] = result["profiles"].setdefault(profile, {})
            for sender in senders:
                started = time.monotonic()
                print(f"… {profile} / {sender} ({seconds:.0f} s)", file=sys.stderr, flush=True)
                try:
                    data = await run_sender(
                        profile, sender, seconds, workdir / f"{profile}-{sender}", static, wav,
                        extra_probe=RECORDER_PROBE, sender_env={SOURCE_ENV: str(wav)},
                    )  # fmt: skip
                    entry[sender] = await asyncio.to_thread(run_figures, data, loop)
                except Exception as exc:
                    entry[sender] = {"error": repr(exc)}
                took = time.monotonic() - started
                print(f"  done in {took:.0f} s", file=sys.stderr, flush=True)
    finally:
        if keep:
            print(f"logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return result


def nothing_received(result: dict[str, Any]) -> list[str]:
    """Runs on `good` where no audio of the source arrived: the benchmark has rotted."""
    good = result["profiles"].get("good", {})
    return [f"{sender} on 'good': {f['error']}" for sender, f in good.items() if "error" in f]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", default=",".join(ALL_PROFILES))
    parser.add_argument("--senders", default=",".join(SENDERS))
    parser.add_argument("--seconds", type=float, default=45.0, help="measured per run")
    parser.add_argument("--smoke", action="store_true", help="good, 20 s, telecart only")
    parser.add_argument("--save", action="store_true", help="bench/results/stethoscope-DATE.json")
    parser.add_argument("--keep", action="store_true", help="keep the per-run logs")
    args = parser.parse_args()
    profiles = [SMOKE_PROFILE] if args.smoke else args.profiles.split(",")
    senders = [SMOKE_SENDER] if args.smoke else args.senders.split(",")
    seconds = SMOKE_SECONDS if args.smoke else args.seconds
    unknown = [s for s in senders if s not in SENDERS] + [
        p for p in profiles if p not in ALL_PROFILES
    ]
    if unknown:
        parser.error(f"unknown sender or profile: {', '.join(unknown)}")
    started = time.monotonic()
    try:
        result = asyncio.run(_run_all(profiles, senders, seconds, args.keep))
    except KeyboardInterrupt:
        print("interrupted; everything started has been stopped", file=sys.stderr)
        return 130
    result["measured"] = datetime.date.today().isoformat()
    result["wall_s"] = round(time.monotonic() - started)
    print(table(result), flush=True)
    print(json.dumps({"bench": "stethoscope", **result}))
    if args.save:
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"stethoscope-{result['measured']}.json"
        path.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        print(f"saved {path}", file=sys.stderr)
    failures = nothing_received(result)
    for failure in failures:
        print(f"FAIL {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
