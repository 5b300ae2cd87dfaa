"""Shared pytest configuration."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def media_on_loopback() -> None:
    """Every aiortc peer in the test process offers only 127.0.0.1: media stays on loopback."""
    from telecart.cart_agent.ice_addresses import restrict_host_addresses

    restrict_host_addresses(["127.0.0.1"])


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives a real headless Chromium")
    config.addinivalue_line("markers", "netns: needs root, /dev/net/tun and ip netns")
