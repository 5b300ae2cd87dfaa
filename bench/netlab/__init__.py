"""Rural link lab: two network namespaces joined by an emulated link (docs/netlab.md)."""

from bench.netlab.gilbert_elliott import GilbertElliottParams
from bench.netlab.lab import LinkLab, LinkLabError
from bench.netlab.link_model import DirectionParams, DirectionStats, LinkDirection
from bench.netlab.profiles import Profile, load_profile, load_profiles

__all__ = [
    "DirectionParams",
    "DirectionStats",
    "GilbertElliottParams",
    "LinkDirection",
    "LinkLab",
    "LinkLabError",
    "Profile",
    "load_profile",
    "load_profiles",
]
