"""One PNG per profile: link use vs capacity, glass-to-glass latency, fps and stalls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

COLOURS = {"telecart": "tab:blue", "chrome": "tab:orange", "aiortc": "tab:green"}
SMOOTH_S = 1.0


def _smoothed(points: list[tuple[float, float]], window_s: float = SMOOTH_S) -> list[float]:
    """Trailing mean over `window_s` (the series come in 100 ms and 250 ms steps)."""
    out, start, total = [], 0, 0.0
    for i, (t, value) in enumerate(points):
        total += value
        while points[start][0] <= t - window_s:
            total -= points[start][1]
            start += 1
        out.append(total / (i - start + 1))
    return out


def _legend(ax: Any, **kwargs: Any) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper right", fontsize=8, **kwargs)


def plot_profile(profile: str, timelines: dict[str, dict[str, Any]], path: Path) -> None:
    """`timelines`: sender → `media_metrics.timeline(...)`."""
    fig, (link, latency, fps) = plt.subplots(3, 1, figsize=(10, 9), sharex=True)
    capacity_drawn = False
    for sender, tl in timelines.items():
        colour = COLOURS.get(sender, "tab:gray")
        if tl["link"]:
            t, kbps, capacity = zip(*tl["link"], strict=True)
            smooth = _smoothed(list(zip(t, kbps, strict=True)))
            link.plot(t, smooth, color=colour, lw=1, label=f"{sender}: delivered up")
            if not capacity_drawn:
                link.plot(t, capacity, color="black", ls="--", lw=1.2, label="capacity")
                capacity_drawn = True
        if tl["g2g"]:
            t, ms = zip(*tl["g2g"], strict=True)
            latency.plot(t, ms, ".", color=colour, ms=2, label=sender)
        if tl["fps"]:
            t, _ = zip(*tl["fps"], strict=True)
            fps.plot(t, _smoothed(tl["fps"]), color=colour, lw=1, label=sender)
        for a, b in tl["stalls"]:
            fps.axvspan(a, b, color=colour, alpha=0.15, lw=0)
    link.set_ylabel("kbit/s (1 s mean)")
    link.set_title(f"{profile}: uplink delivered vs capacity")
    _legend(link)
    latency.set_ylabel("glass-to-glass ms")
    latency.set_yscale("log")
    _legend(latency, markerscale=4)
    fps.set_ylabel("room fps, 1 s mean\n(shaded: stalls ≥ 0.5 s)")
    fps.set_xlabel("seconds since Accept")
    _legend(fps)
    for ax in (link, latency, fps):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
