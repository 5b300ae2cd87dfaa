"""Link profiles: named pairs of direction parameters, loaded from ``bench/profiles.toml``."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.netlab.gilbert_elliott import GilbertElliottParams
from bench.netlab.link_model import DirectionParams

PROFILES_FILE = Path(__file__).resolve().parent.parent / "profiles.toml"

_DIRECTION_KEYS = {
    "rate_kbps",
    "rate_trace",
    "rate_trace_file",
    "delay_ms",
    "jitter_ms",
    "loss",
    "gilbert_elliott",
    "queue_ms",
    "outages",
    "overhead_bytes",
    "down",
}


@dataclass(frozen=True)
class Profile:
    """A link: ``up`` is cart → clinic, ``down`` is clinic → cart."""

    name: str
    description: str
    up: DirectionParams
    down: DirectionParams


class ProfileError(ValueError):
    """A profile is missing or malformed; the message names the file and the key."""


def load_rate_trace(path: Path) -> tuple[tuple[float, float], ...]:
    """Read ``t_seconds kbps`` lines (blank lines and ``#`` comments ignored)."""
    steps = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        fields = text.replace(",", " ").split()
        if len(fields) != 2:
            raise ProfileError(f"{path}:{number}: expected 't_seconds kbps', got {line!r}")
        steps.append((float(fields[0]), float(fields[1])))
    return tuple(steps)


def direction_from_mapping(values: Mapping[str, Any], base_dir: Path) -> DirectionParams:
    unknown = set(values) - _DIRECTION_KEYS
    if unknown:
        raise ProfileError(f"unknown link parameter(s): {', '.join(sorted(unknown))}")
    kwargs: dict[str, Any] = {k: v for k, v in values.items() if k != "rate_trace_file"}
    if "rate_trace_file" in values:
        kwargs["rate_trace"] = load_rate_trace(base_dir / values["rate_trace_file"])
    for key in ("rate_trace", "outages"):
        if key in kwargs:
            kwargs[key] = tuple((float(a), float(b)) for a, b in kwargs[key])
    if kwargs.get("gilbert_elliott") is not None:
        kwargs["gilbert_elliott"] = GilbertElliottParams(**kwargs["gilbert_elliott"])
    for key in ("rate_kbps", "delay_ms", "jitter_ms", "loss", "queue_ms"):
        if key in kwargs:
            kwargs[key] = float(kwargs[key])
    return DirectionParams(**kwargs)


def profile_to_json(profile: Profile) -> str:
    return json.dumps(dataclasses.asdict(profile))


def profile_from_json(text: str) -> Profile:
    raw = json.loads(text)
    return Profile(
        name=raw["name"],
        description=raw.get("description", ""),
        up=direction_from_mapping(raw["up"], PROFILES_FILE.parent),
        down=direction_from_mapping(raw["down"], PROFILES_FILE.parent),
    )


def load_profiles(path: Path = PROFILES_FILE) -> dict[str, Profile]:
    with path.open("rb") as f:
        raw = tomllib.load(f)
    profiles = {}
    for name, table in raw.items():
        common = {k: v for k, v in table.items() if k not in ("description", "up", "down")}
        try:
            up = direction_from_mapping({**common, **table.get("up", {})}, path.parent)
            down = direction_from_mapping({**common, **table.get("down", {})}, path.parent)
        except (TypeError, ValueError) as exc:
            raise ProfileError(f"{path}: profile {name!r}: {exc}") from exc
        profiles[name] = Profile(name, table.get("description", ""), up, down)
    return profiles


def load_profile(name: str, path: Path = PROFILES_FILE) -> Profile:
    profiles = load_profiles(path)
    if name not in profiles:
        known = ", ".join(profiles)
        raise ProfileError(f"no link profile {name!r} in {path}; known: {known}")
    return profiles[name]
