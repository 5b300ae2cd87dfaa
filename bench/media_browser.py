"""Headless Chromium inside a lab namespace, driven by Playwright from the benchmark process.

Playwright talks to Chromium over a pipe (fds 3 and 4), so a wrapper script that runs
`ip netns exec <ns> chromium "$@"` puts the browser, and all of its network traffic, in
the namespace while Playwright stays in the benchmark's own process.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Page, Playwright

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS

# The test suite's flags, less loopback candidates: in the lab, media must cross the
# emulated link, never a namespace's own loopback.
BASE_ARGS = [a for a in CHROMIUM_ARGS if a != "--allow-loopback-in-peer-connection"]
FIRST_OFFER_TIMEOUT_MS = 60_000


def chromium_args(origin: str, *extra: str) -> list[str]:
    """Flags for a browser that uses `getUserMedia` on the plain-http `origin`."""
    return [*BASE_ARGS, f"--unsafely-treat-insecure-origin-as-secure={origin}", *extra]


async def launch_in_namespace(
    playwright: Playwright, ns: str, args: list[str], workdir: Path
) -> Browser:
    wrapper = workdir / f"chromium-{ns}"
    wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {ns} {CHROMIUM} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return await playwright.chromium.launch(executable_path=wrapper, args=args, headless=True)


async def log_in_specialist(page: Page, base_url: str, username: str, password: str) -> None:
    await page.goto(base_url + "/")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", password)
    await page.click("button[type=submit]")
    await page.wait_for_function("window.telecart.state === 'online'", timeout=30_000)


async def wait_for_request(page: Page) -> None:
    await page.wait_for_selector("button.accept", timeout=FIRST_OFFER_TIMEOUT_MS)


async def read_probe(page: Page) -> dict[str, Any]:
    """`window.bench` with each sample's streams keyed by role instead of mid."""
    data: dict[str, Any] = await page.evaluate(
        "({ ...window.bench, roles: window.bench.resolveRoles() })"
    )
    roles: dict[str, str] = data.pop("roles")
    for key in ("samples", "audio"):
        for sample in data[key]:
            sample["tracks"] = {roles.get(m, f"mid{m}"): v for m, v in sample["tracks"].items()}
    return data
