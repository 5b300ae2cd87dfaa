"""One media benchmark run: one sender over one link profile, measured in the browser.

The lab's clinic namespace holds the telecart server and the headless Chromium specialist
(the real specialist page plus `media_pages.RECEIVER_PROBE`); the cart namespace holds the
sender: the telecart agent, plain aiortc, or a second Chromium. Every run gets a fresh
lab, server and browsers, so no queue, estimate or cache carries over.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from playwright.async_api import Browser, Page, async_playwright

from bench.media_agent import CENSUS_FILE, WORKDIR_ENV
from bench.media_browser import (
    chromium_args,
    launch_in_namespace,
    log_in_specialist,
    read_probe,
    wait_for_request,
)
from bench.media_pages import RECEIVER_PROBE
from bench.netlab import LinkLab
from bench.netlab.profiles import Profile
from bench.uplink_census import read_census

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
SERVER_PORT = 8080
SENDERS = ("telecart", "chrome", "aiortc")
_SENDER_MODULES = {"telecart": "bench.media_agent", "aiortc": "bench.media_aiortc"}
_READY_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 5.0


@dataclass
class RunData:
    """What one run measured; `media_metrics.figures` turns it into the reported numbers."""

    sender: str
    profile: Profile
    seconds: float
    accepted_at_ms: float = 0.0
    probe: dict[str, Any] = field(default_factory=dict)
    series: list[dict[str, float]] = field(default_factory=list)
    link_stats: dict[str, Any] = field(default_factory=dict)
    uplink_kbps: dict[str, float] = field(default_factory=dict)  # telecart: by kind
    error: str | None = None


@dataclass(frozen=True)
class ServerInfo:
    base_url: str
    ws_url: str
    cart_token: str
    username: str
    password: str


async def _stop_process(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    if process.stdin is not None:
        process.stdin.close()
    try:
        await asyncio.wait_for(process.wait(), _STOP_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()


def _log_file(workdir: Path, name: str) -> IO[bytes]:
    return (workdir / f"{name}.log").open("wb")


@asynccontextmanager
async def _server(lab: LinkLab, workdir: Path, static: Path) -> AsyncIterator[ServerInfo]:
    argv = [
        sys.executable, "-m", "bench.media_server", "--host", lab.clinic_ip,
        "--port", str(SERVER_PORT), "--data", str(workdir / "server"), "--static", str(static),
    ]  # fmt: skip
    with _log_file(workdir, "server") as stderr:
        process = await lab.run_in(
            lab.clinic_ns, argv, cwd=REPO_ROOT, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=stderr,
        )  # fmt: skip
        try:
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), _READY_TIMEOUT_S)
            if not line:
                raise RuntimeError(f"the server did not start: see {workdir / 'server.log'}")
            ready = json.loads(line)
            base = f"http://{lab.clinic_ip}:{SERVER_PORT}"
            yield ServerInfo(
                base, f"ws://{lab.clinic_ip}:{SERVER_PORT}/ws", ready["cart_token"],
                ready["username"], ready["password"],
            )  # fmt: skip
        finally:
            await _stop_process(process)


@asynccontextmanager
async def _python_sender(
    lab: LinkLab, sender: str, server: ServerInfo, workdir: Path, extra_env: Mapping[str, str]
) -> AsyncIterator[None]:
    env = dict(os.environ, TELECART_SERVER_URL=server.ws_url, TELECART_CART_TOKEN=server.cart_token)
    env[WORKDIR_ENV] = str(workdir)  # the agent keeps its link recording there
    env.update(extra_env)
    argv = [sys.executable, "-m", _SENDER_MODULES[sender]]
    with _log_file(workdir, sender) as stderr:
        process = await lab.run_in(
            lab.cart_ns, argv, cwd=REPO_ROOT, env=env, stdin=asyncio.subprocess.PIPE,
            stdout=stderr, stderr=stderr,
        )  # fmt: skip
        try:
            yield
        finally:
            await _stop_process(process)


@asynccontextmanager
async def _chrome_sender(
    lab: LinkLab, browser_sender: Browser, server: ServerInfo
) -> AsyncIterator[None]:
    page = await browser_sender.new_page()
    await page.goto(f"{server.base_url}/bench/sender.html?token={server.cart_token}")
    try:
        yield
    finally:
        errors = await page.evaluate("window.sender.errors")
        if errors:
            log.warning("Chrome sender: %s", "; ".join(errors))
        await page.close()


async def _measure(page: Page, lab: LinkLab, data: RunData, extra_probe: str) -> None:
    await wait_for_request(page)
    await page.evaluate(RECEIVER_PROBE)
    if extra_probe:
        await page.evaluate(extra_probe)
    await lab.restart_clock()
    data.accepted_at_ms = time.time() * 1000
    await page.click("button.accept")
    await asyncio.sleep(data.seconds)
    data.probe = await read_probe(page)
    data.series = await lab.series()
    data.link_stats = await lab.stats()


async def run_sender(
    profile: str | Profile,
    sender: str,
    seconds: float,
    workdir: Path,
    static: Path,
    wav: Path,
    *,
    extra_probe: str = "",
    sender_env: Mapping[str, str] | None = None,
) -> RunData:
    """Build the lab, run `sender` for `seconds` after the specialist accepts, measure.

    `extra_probe` is more JavaScript for the specialist page, evaluated after
    `RECEIVER_PROBE` (it may add to `window.bench`); `sender_env` goes to a Python sender.
    """
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    async with LinkLab(profile) as lab:
        data = RunData(sender, lab.profile, seconds)
        origin = f"http://{lab.clinic_ip}:{SERVER_PORT}"
        async with _server(lab, workdir, static) as server, async_playwright() as playwright:
            receiver = await launch_in_namespace(
                playwright, lab.clinic_ns, chromium_args(origin), workdir
            )
            browsers = [receiver]
            try:
                page = await receiver.new_page()
                await log_in_specialist(page, server.base_url, server.username, server.password)
                if sender == "chrome":
                    args = chromium_args(origin, f"--use-file-for-fake-audio-capture={wav}")
                    browser_sender = await launch_in_namespace(
                        playwright, lab.cart_ns, args, workdir
                    )
                    browsers.append(browser_sender)
                    sending = _chrome_sender(lab, browser_sender, server)
                else:
                    sending = _python_sender(lab, sender, server, workdir, sender_env or {})
                async with sending:
                    await _measure(page, lab, data, extra_probe)
                census = workdir / "agent" / CENSUS_FILE  # written as the agent stopped
                data.uplink_kbps = await asyncio.to_thread(read_census, census)
                raw = {"accepted_at_ms": data.accepted_at_ms, "probe": data.probe}
                raw |= {"series": data.series, "link_stats": data.link_stats}
                await asyncio.to_thread((workdir / "raw.json").write_text, json.dumps(raw))
            finally:
                for browser in reversed(browsers):
                    with contextlib.suppress(Exception):
                        await browser.close()
    return data
