from __future__ import annotations

from pathlib import Path

import pytest

from bench.netlab.netem import netem_args
from bench.netlab.profiles import (
    ProfileError,
    load_profile,
    load_profiles,
    profile_from_json,
    profile_to_json,
)


def test_issue_profiles_are_all_there() -> None:
    assert set(load_profiles()) == {
        "good", "rural-3g", "satellite", "edge", "step", "bursty", "outage"
    }  # fmt: skip


def test_rural_3g_is_asymmetric() -> None:
    profile = load_profile("rural-3g")
    assert (profile.up.rate_kbps, profile.down.rate_kbps) == (384, 1000)
    assert profile.up.delay_ms == 75 and profile.up.jitter_ms == 15
    assert profile.up.loss == 0.02 and profile.up.queue_ms == 300


def test_step_uplink_follows_its_trace() -> None:
    up = load_profile("step").up
    assert [up.rate_at(t) for t in (0, 19.9, 20, 39.9, 40, 100)] == [
        2000, 2000, 300, 300, 1000, 1000
    ]  # fmt: skip
    assert load_profile("step").down.rate_at(30) == 2000


def test_bursty_averages_three_percent() -> None:
    assert load_profile("bursty").up.average_loss == pytest.approx(0.03)


def test_outage_is_down_from_20_to_30_s() -> None:
    down = load_profile("outage").down
    assert [down.rate_at(t) for t in (19.9, 20, 29.9, 30)] == [1000, 0, 0, 1000]


def test_profile_survives_json() -> None:
    profile = load_profile("bursty")
    assert profile_from_json(profile_to_json(profile)) == profile


def test_rate_trace_file_is_read(tmp_path: Path) -> None:
    (tmp_path / "trace.txt").write_text("# t kbps\n0 500\n10 250\n")
    (tmp_path / "p.toml").write_text('[x]\nup = { rate_trace_file = "trace.txt" }\n')
    assert load_profile("x", tmp_path / "p.toml").up.rate_trace == ((0, 500), (10, 250))


def test_unknown_profile_names_the_known_ones() -> None:
    with pytest.raises(ProfileError, match="rural-3g"):
        load_profile("moon")


def test_unknown_key_is_refused(tmp_path: Path) -> None:
    (tmp_path / "p.toml").write_text("[x]\nbandwidth = 5\n")
    with pytest.raises(ProfileError, match="bandwidth"):
        load_profiles(tmp_path / "p.toml")


def test_netem_arguments_follow_the_profile() -> None:
    bursty = load_profile("bursty").up
    assert netem_args(bursty, 0.0)[:6] == ["limit", "16", "delay", "60.0ms", "17.321ms", "rate"]
    assert "gemodel" in netem_args(bursty, 0.0)
    assert netem_args(load_profile("outage").up, 25.0)[-2:] == ["loss", "100%"]
