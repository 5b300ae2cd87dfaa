"""Shared pytest configuration."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives a real headless Chromium")
    config.addinivalue_line("markers", "netns: needs root, /dev/net/tun and ip netns")
