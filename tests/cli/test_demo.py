"""`telecart demo`, the README's first command, as a process: its printed password logs
the demo specialist in, the simulated cart waits in the queue (and says so on its nurse
screen) and offers real media on Accept, Ctrl-C stops it cleanly, and a second run
replaces the password."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from telecart.signalling.client import SignallingClient
from telecart.signalling.messages import Accept, Offer, QueueUpdate
from tests.cli.run import run_telecart
from tests.server.harness import next_of

STARTED_S = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def taken_port() -> Iterator[int]:
    """A loopback port something else listens on, for as long as the block runs."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield int(taken.getsockname()[1])


@dataclass
class Demo:
    process: asyncio.subprocess.Process
    base: str
    username: str
    password: str
    printed: list[str]
    nurse: str | None  # the nurse screen's address, if it is shown


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "TELECART_DATA_DIR": str(tmp_path / "server"),
        "TELECART_AGENT_DATA_DIR": str(tmp_path / "agent"),
    }


def _config(tmp_path: Path, nurse_port: int) -> str:
    path = tmp_path / "telecart.toml"
    path.write_text(f"[agent]\nnurse_port = {nurse_port}\n", encoding="utf-8")
    return str(path)


@asynccontextmanager
async def demo(tmp_path: Path, port: int, nurse_port: int) -> AsyncIterator[Demo]:
    """`telecart demo --port PORT` until its banner is out; interrupted (Ctrl-C) at the end."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "telecart", "--config", _config(tmp_path, nurse_port),
        "demo", "--port", str(port),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, env=_env(tmp_path),
    )  # fmt: skip
    assert process.stdout is not None
    printed: list[str] = []
    try:
        async with asyncio.timeout(STARTED_S):
            while not any(line.startswith("A simulated cart") for line in printed):
                line = (await process.stdout.readline()).decode()
                assert line, f"the demo ended before its banner: {printed}"
                printed.append(line.strip())
        banner = "\n".join(printed)
        url = re.search(r"Open\s+(http://\S+)", banner)
        username = re.search(r"Username\s+(\S+)", banner)
        password = re.search(r"Password\s+(\S+)", banner)
        nurse = re.search(r"Nurse\s+(http://\S+)", banner)
        assert url and username and password, banner
        yield Demo(
            process, url[1].rstrip("/"), username[1], password[1], printed,
            nurse[1].rstrip("/") if nurse else None,
        )  # fmt: skip
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
            rest = await asyncio.wait_for(process.stdout.read(), 20.0)
            printed.extend(rest.decode().splitlines())
            await asyncio.wait_for(process.wait(), 20.0)


def files_holding(root: Path, text: str) -> tuple[int, list[Path]]:
    """How many files are under `root`, and which of them hold `text`."""
    files = [path for path in root.rglob("*") if path.is_file()]
    return len(files), [path for path in files if text.encode() in path.read_bytes()]


async def eventually_waiting(nurse: str) -> None:
    """The nurse screen says the cart waits for a cardiologist, within 10 s."""
    async with aiohttp.ClientSession() as http:
        for _ in range(100):
            async with http.get(f"{nurse}/api/state") as resp:
                assert resp.status == 200
                state = await resp.json()
            if state["phase"] == "waiting":
                assert state["session"]["specialty"] == "cardiology"
                return
            await asyncio.sleep(0.1)
    raise AssertionError(f"the nurse screen never showed the request: {state}")


async def login(base: str, username: str, password: str) -> tuple[int, dict[str, str]]:
    async with aiohttp.ClientSession() as http:
        body = {"username": username, "password": password}
        async with http.post(f"{base}/api/login", json=body) as resp:
            cookie = resp.cookies.get("telecart_session")
            return resp.status, ({"telecart_session": cookie.value} if cookie else {})


async def test_the_demo_serves_a_waiting_simulated_cart_and_stops_on_ctrl_c(
    tmp_path: Path,
) -> None:
    port, nurse_port = free_port(), free_port()
    async with demo(tmp_path, port, nurse_port) as first:
        assert first.base == f"http://127.0.0.1:{port}"
        assert first.nurse == f"http://127.0.0.1:{nurse_port}"
        await eventually_waiting(first.nurse)
        status, cookies = await login(first.base, first.username, first.password)
        assert status == 200
        specialist = SignallingClient(
            first.base.replace("http", "ws") + "/ws", role="specialist", cookies=cookies
        )
        await specialist.connect()
        try:
            queue = await next_of(specialist, QueueUpdate)
            while not (isinstance(queue, QueueUpdate) and queue.entries):
                queue = await next_of(specialist, QueueUpdate)
            (entry,) = queue.entries
            assert (entry.specialty, entry.reason) == ("cardiology", "Demo: simulated patient")
            await specialist.send(Accept(session_id=entry.session_id))
            offer = await next_of(specialist, Offer, timeout_s=20.0)
            assert isinstance(offer, Offer) and offer.session_id == entry.session_id
            assert offer.sdp.count("m=video") == 2 and offer.sdp.count("m=audio") == 2
            assert "m=application" in offer.sdp  # vitals, control and stills channels
        finally:
            await specialist.close()
    assert first.process.returncode == 0, first.printed
    assert first.printed[-1] == "Demo stopped."
    stored, holding = await asyncio.to_thread(files_holding, tmp_path, first.password)
    assert stored and not holding  # the password is printed once, kept only as a hash

    async with demo(tmp_path, port, nurse_port) as second:  # the same data: user and cart reused
        assert second.password != first.password
        assert (await login(second.base, second.username, first.password))[0] == 401
        assert (await login(second.base, second.username, second.password))[0] == 200
    assert second.process.returncode == 0, second.printed


def test_a_busy_port_or_an_unknown_specialty_is_told_plainly(tmp_path: Path) -> None:
    with taken_port() as port:
        busy = run_telecart(tmp_path, "demo", "--port", str(port))
    assert busy.returncode == 1
    assert f"Port {port} is busy" in busy.stdout and "--port" in busy.stdout
    unknown = run_telecart(tmp_path, "demo", "--specialty", "astrology")
    assert unknown.returncode == 2
    assert "Unknown specialty 'astrology'" in unknown.stdout and "cardiology" in unknown.stdout


async def test_the_demo_runs_without_its_nurse_screen_when_that_port_is_taken(
    tmp_path: Path,
) -> None:
    with taken_port() as nurse_port:
        async with demo(tmp_path, free_port(), nurse_port) as running:
            assert running.nurse is None
            assert f"No nurse screen: port {nurse_port} is busy" in "\n".join(running.printed)
            status, _ = await login(running.base, running.username, running.password)
            assert status == 200
    assert running.process.returncode == 0, running.printed
