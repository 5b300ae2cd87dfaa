"""Signalling load: idle carts, concurrent session setups and relay latency on loopback.

The server runs alone in its own process (`telecart server`), so its RSS is its own; idle
carts are held by worker processes of this script, raw aiohttp WebSockets speaking the
protocol. Prints a table and one JSON line.

    .venv/bin/python bench/signalling_load.py            # 10,000 idle, 100 setups, 500 msg/s
    .venv/bin/python bench/signalling_load.py --quick    # CI smoke
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from telecart.config import DEFAULT_SPECIALTIES
from telecart.server.credentials import hash_password, new_token, token_hash
from telecart.server.store import Store
from telecart.signalling.messages import (
    Accept,
    Answer,
    Hello,
    IceCandidate,
    Message,
    Offer,
    QueueUpdate,
    RequestConsultation,
    SessionUpdate,
    Welcome,
    encode_message,
    parse_message,
)
from telecart.signalling.session_state import SessionState

GOAL_IDLE_RSS_BYTES = 1024**3
GOAL_RELAY_P99_MS = 10.0
CARTS_PER_WORKER = 2500
CONNECTS_IN_FLIGHT = 64
PASSWORD = "bench password"
TIMEOUT_S = 120.0
# A realistic offer: aiortc's audio+video+data SDP is 3-5 kB.
FAKE_SDP = "v=0\r\n" + "a=fake-attribute:" + "x" * 4000 + "\r\n"


@dataclass(frozen=True)
class Plan:
    idle: int
    setups: int
    rate: int
    relay_s: float


@dataclass
class Results:
    plan: Plan
    figures: dict[str, Any] = field(default_factory=dict)


# --- server process ------------------------------------------------------------------------


class ServerProcess:
    """`telecart server` on a free loopback port with its own data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.port = _free_port()
        self.log_path = data_dir / "server.log"
        env = dict(os.environ, TELECART_DATA_DIR=str(data_dir), TELECART_PORT=str(self.port))
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "telecart", "server", "--host", "127.0.0.1"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def rss_bytes(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        assert match is not None
        return int(match.group(1)) * 1024

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession() as http:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"server exited: {self.log_path.read_text()[-2000:]}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{self.base}/healthz") as resp:
                        if resp.status == 200:
                            return
                if time.monotonic() > deadline:
                    raise RuntimeError("server did not become ready in 30 s")
                await asyncio.sleep(0.2)

    async def gauge(self, name: str) -> float:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{self.base}/metrics") as resp:
                text = await resp.text()
        match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
        return float(match.group(1)) if match else math.nan

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _raise_fd_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# --- database ------------------------------------------------------------------------------


async def _populate(db: Path, carts: int, specialists: int) -> tuple[list[str], list[str]]:
    """Carts named bench-<i> (tokens returned in order) and specialists spec-<i>."""
    store = await Store.open(db)
    try:
        tokens = [new_token() for _ in range(carts)]
        for i, token in enumerate(tokens):
            await store.add_cart(f"bench-{i}", "Bench clinic", token_hash(token))
        password_hash = hash_password(PASSWORD)
        usernames = [f"spec-{i}" for i in range(specialists)]
        for i, username in enumerate(usernames):
            specialty = DEFAULT_SPECIALTIES[i % len(DEFAULT_SPECIALTIES)]
            await store.add_specialist(username, f"Dr {i}", password_hash, (specialty,))
        return tokens, usernames
    finally:
        await store.close()


# --- protocol clients ----------------------------------------------------------------------


class Peer:
    """One WebSocket, a reader task, and a queue of what arrived (ICE goes to `on_ice`)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.on_ice: Callable[[IceCandidate], None] | None = None
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for frame in self.ws:
            if frame.type != aiohttp.WSMsgType.TEXT:
                continue
            message = parse_message(frame.data)
            if isinstance(message, IceCandidate) and self.on_ice is not None:
                self.on_ice(message)
            else:
                self.inbox.put_nowait(message)

    async def send(self, message: Message) -> None:
        await self.ws.send_str(encode_message(message))

    async def next(self, match: Callable[[Message], bool]) -> Message:
        async with asyncio.timeout(TIMEOUT_S):
            while True:
                message = await self.inbox.get()
                if match(message):
                    return message

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


async def _connect(
    http: aiohttp.ClientSession, url: str, hello: Hello, cookies: dict[str, str] | None = None
) -> Peer:
    headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in (cookies or {}).items())}
    ws = await http.ws_connect(url, headers=headers if cookies else None, autoping=True)
    peer = Peer(ws)
    await peer.send(hello)
    await peer.next(lambda m: isinstance(m, Welcome))
    return peer


async def _login(http: aiohttp.ClientSession, base: str, username: str) -> dict[str, str]:
    async with http.post(
        f"{base}/api/login", json={"username": username, "password": PASSWORD}
    ) as resp:
        if resp.status != 200:
            raise RuntimeError(f"login {username}: {resp.status} {await resp.text()}")
        return {"telecart_session": resp.cookies["telecart_session"].value}


# --- idle carts (worker processes) ---------------------------------------------------------


async def _idle_worker(url: str, tokens: list[str]) -> int:
    """Hold one cart per token until stdin closes; reports one JSON line."""
    _raise_fd_limit()
    connector = aiohttp.TCPConnector(limit=0)
    gate = asyncio.Semaphore(CONNECTS_IN_FLIGHT)
    readers: list[asyncio.Task[None]] = []
    sockets: list[aiohttp.ClientWebSocketResponse] = []
    failed = 0

    async def hold(ws: aiohttp.ClientWebSocketResponse) -> None:
        async for _ in ws:  # answers the server's heartbeat pings
            pass

    async def one(http: aiohttp.ClientSession, token: str) -> None:
        nonlocal failed
        async with gate:
            try:
                ws = await http.ws_connect(url, autoping=True)
                await ws.send_str(encode_message(Hello(role="cart", token=token)))
                first = await ws.receive(timeout=TIMEOUT_S)
                if not isinstance(parse_message(first.data), Welcome):
                    raise RuntimeError(first.data)
            except Exception:
                failed += 1
                return
        sockets.append(ws)
        readers.append(asyncio.create_task(hold(ws)))

    began = time.monotonic()
    async with aiohttp.ClientSession(connector=connector) as http:
        await asyncio.gather(*(one(http, t) for t in tokens))
        elapsed = time.monotonic() - began
        report = {"connected": len(sockets), "failed": failed, "seconds": elapsed}
        print(json.dumps(report), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    return 0


class IdleCarts:
    """Worker processes that hold the idle carts."""

    def __init__(self) -> None:
        self.workers: list[asyncio.subprocess.Process] = []

    async def start(self, url: str, tokens_file: Path, start: int, count: int) -> dict[str, Any]:
        chunks = max(1, math.ceil(count / CARTS_PER_WORKER))
        size = math.ceil(count / chunks)
        for i in range(chunks):
            n = min(size, count - i * size)
            self.workers.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    __file__,
                    "--idle-worker",
                    url,
                    str(tokens_file),
                    str(start + i * size),
                    str(n),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                )
            )
        reports = []
        for worker in self.workers:
            assert worker.stdout is not None
            line = await asyncio.wait_for(worker.stdout.readline(), 600)
            reports.append(json.loads(line))
        return {
            "connected": sum(r["connected"] for r in reports),
            "failed": sum(r["failed"] for r in reports),
            "seconds": max(r["seconds"] for r in reports),
        }

    async def stop(self) -> None:
        for worker in self.workers:
            if worker.stdin is not None:
                worker.stdin.close()
        for worker in self.workers:
            try:
                await asyncio.wait_for(worker.wait(), 30)
            except TimeoutError:
                worker.kill()
                await worker.wait()


# --- phases --------------------------------------------------------------------------------


@dataclass
class Pair:
    cart: Peer
    specialist: Peer
    cart_name: str
    session_id: str = ""


async def _setup_one(pair: Pair) -> float:
    """request → queue → accept → accepted → offer → answer; seconds from request to answer."""
    began = time.perf_counter()

    def in_queue(m: Message) -> bool:
        return isinstance(m, QueueUpdate) and any(e.cart_name == pair.cart_name for e in m.entries)

    async def specialist_side() -> None:
        queue = await pair.specialist.next(in_queue)
        assert isinstance(queue, QueueUpdate)
        [entry] = [e for e in queue.entries if e.cart_name == pair.cart_name]
        await pair.specialist.send(Accept(session_id=entry.session_id))
        offer = await pair.specialist.next(lambda m: isinstance(m, Offer))
        assert isinstance(offer, Offer)
        await pair.specialist.send(Answer(session_id=offer.session_id, sdp=FAKE_SDP))

    async def cart_side() -> None:
        accepted = await pair.cart.next(
            lambda m: isinstance(m, SessionUpdate) and m.session.state is SessionState.ACCEPTED
        )
        assert isinstance(accepted, SessionUpdate)
        pair.session_id = accepted.session.session_id
        await pair.cart.send(Offer(session_id=pair.session_id, sdp=FAKE_SDP))
        await pair.cart.next(lambda m: isinstance(m, Answer))

    specialist_task = asyncio.create_task(specialist_side())
    await asyncio.gather(specialist_task, cart_side())
    return time.perf_counter() - began


async def _run_setups(pairs: list[Pair]) -> list[float]:
    async def one(i: int, pair: Pair) -> float:
        specialty = DEFAULT_SPECIALTIES[i % len(DEFAULT_SPECIALTIES)]
        task = asyncio.create_task(_setup_one(pair))
        await pair.cart.send(RequestConsultation(specialty=specialty, reason="bench"))
        return await task

    return list(await asyncio.gather(*(one(i, p) for i, p in enumerate(pairs))))


async def _run_relay(pairs: list[Pair], rate: int, seconds: float) -> tuple[list[float], int]:
    """Specialist → cart ICE candidates at `rate` a second, spread over every session."""
    sent_at: dict[int, float] = {}
    latencies: list[float] = []
    total = int(rate * seconds)
    all_in = asyncio.Event()

    def received(message: IceCandidate) -> None:
        seq = int(message.candidate.split()[0].split(":")[1])
        latencies.append(time.perf_counter() - sent_at.pop(seq))
        if len(latencies) == total:
            all_in.set()

    for pair in pairs:
        pair.cart.on_ice = received
    began = time.perf_counter()
    for seq in range(total):
        due = began + seq / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        pair = pairs[seq % len(pairs)]
        candidate = f"candidate:{seq} 1 udp 2122260223 127.0.0.1 {40000 + seq % 20000} typ host"
        sent_at[seq] = time.perf_counter()
        await pair.specialist.send(
            IceCandidate(session_id=pair.session_id, candidate=candidate, sdp_mid="0")
        )
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_in.wait(), 10)
    return latencies, total - len(latencies)


async def _measure_relay(
    server: ServerProcess, pairs: list[Pair], plan: Plan, name: str
) -> dict[str, Any]:
    cpu_base = server.cpu_s()
    latencies, lost = await _run_relay(pairs, plan.rate, plan.relay_s)
    return {
        f"{name}_messages": len(latencies),
        f"{name}_lost": lost,
        f"{name}_p50_ms": round(statistics.median(latencies) * 1000, 2),
        f"{name}_p99_ms": round(_pct(latencies, 0.99) * 1000, 2),
        f"{name}_max_ms": round(max(latencies) * 1000, 2),
        f"{name}_server_cpu_pct": round(100 * (server.cpu_s() - cpu_base) / plan.relay_s, 1),
    }


def _pct(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


async def run(plan: Plan) -> Results:
    _raise_fd_limit()
    results = Results(plan)
    fig = results.figures
    with tempfile.TemporaryDirectory(prefix="telecart-bench-") as tmp:
        data_dir = Path(tmp)
        began = time.monotonic()
        tokens, usernames = await _populate(
            data_dir / "telecart.sqlite3", plan.idle + plan.setups, plan.setups
        )
        fig["populate_s"] = round(time.monotonic() - began, 1)
        tokens_file = data_dir / "tokens.txt"
        tokens_file.write_text("\n".join(tokens))
        server = ServerProcess(data_dir)
        idle = IdleCarts()
        pairs: list[Pair] = []
        try:
            await server.wait_ready()
            fig["rss_start_mib"] = round(server.rss_bytes() / 2**20, 1)
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
                for i in range(plan.setups):
                    cookies = await _login(http, server.base, usernames[i])
                    specialist = await _connect(
                        http, server.ws_url, Hello(role="specialist"), cookies
                    )
                    cart = await _connect(
                        http, server.ws_url, Hello(role="cart", token=tokens[plan.idle + i])
                    )
                    pairs.append(Pair(cart, specialist, f"bench-{plan.idle + i}"))
                # Setups and a reference relay run first, with no idle carts connected.
                cpu_base = server.cpu_s()
                setup_s = await _run_setups(pairs)
                fig["setups"] = len(setup_s)
                fig["setup_p50_ms"] = round(statistics.median(setup_s) * 1000, 1)
                fig["setup_p99_ms"] = round(_pct(setup_s, 0.99) * 1000, 1)
                fig["setup_max_ms"] = round(max(setup_s) * 1000, 1)
                fig["setup_server_cpu_s"] = round(server.cpu_s() - cpu_base, 2)
                fig["relay_rate_per_s"] = plan.rate
                fig |= await _measure_relay(server, pairs, plan, "relay_no_idle")

                await asyncio.sleep(1)
                rss_base = server.rss_bytes()
                cpu_base = server.cpu_s()
                held = await idle.start(server.ws_url, tokens_file, 0, plan.idle)
                fig["idle_connect_s"] = round(held["seconds"], 1)
                fig["idle_connect_per_s"] = round(held["connected"] / held["seconds"])
                fig["idle_connect_server_cpu_s"] = round(server.cpu_s() - cpu_base, 1)
                await asyncio.sleep(3)
                rss_idle = server.rss_bytes()
                fig["idle_connected"] = held["connected"]
                fig["idle_failed"] = held["failed"]
                fig["carts_online_gauge"] = await server.gauge("telecart_carts_online")
                fig["rss_base_mib"] = round(rss_base / 2**20, 1)
                fig["rss_idle_mib"] = round(rss_idle / 2**20, 1)
                fig["rss_per_idle_conn_kib"] = round(
                    (rss_idle - rss_base) / max(1, held["connected"]) / 1024, 1
                )
                fig["rss_projected_10k_mib"] = round(
                    (rss_base + (rss_idle - rss_base) / max(1, held["connected"]) * 10_000) / 2**20,
                    1,
                )
                fig |= await _measure_relay(server, pairs, plan, "relay")
                fig["rss_end_mib"] = round(server.rss_bytes() / 2**20, 1)
                for pair in pairs:
                    await pair.cart.close()
                    await pair.specialist.close()
        finally:
            await idle.stop()
            server.stop()
    fig["goal_idle_10k_under_1gib"] = fig["rss_projected_10k_mib"] * 2**20 < GOAL_IDLE_RSS_BYTES
    fig["goal_relay_p99_under_10ms"] = fig["relay_p99_ms"] < GOAL_RELAY_P99_MS
    return results


def _print(results: Results) -> None:
    plan, fig = results.plan, results.figures
    rows = [
        ("idle carts held (server process)", f"{fig['idle_connected']} of {plan.idle}"),
        ("  connect rate", f"{fig['idle_connect_per_s']}/s ({fig['idle_connect_s']} s)"),
        ("  server RSS before / with idle", f"{fig['rss_base_mib']} / {fig['rss_idle_mib']} MiB"),
        ("  RSS per idle connection", f"{fig['rss_per_idle_conn_kib']} KiB"),
        ("  projected RSS at 10,000 idle", f"{fig['rss_projected_10k_mib']} MiB (goal < 1024)"),
        (f"session setup x{fig['setups']} concurrent, no idle p50", f"{fig['setup_p50_ms']} ms"),
        ("  p99 / max", f"{fig['setup_p99_ms']} / {fig['setup_max_ms']} ms"),
        (f"relay at {plan.rate} msg/s, no idle carts p50", f"{fig['relay_no_idle_p50_ms']} ms"),
        ("  p99 / max", f"{fig['relay_no_idle_p99_ms']} / {fig['relay_no_idle_max_ms']} ms"),
        (f"relay at {plan.rate} msg/s, idle carts held p50", f"{fig['relay_p50_ms']} ms"),
        ("  p99 / max", f"{fig['relay_p99_ms']} / {fig['relay_max_ms']} ms (goal p99 < 10)"),
        ("  messages / lost", f"{fig['relay_messages']} / {fig['relay_lost']}"),
        ("  server CPU while relaying", f"{fig['relay_server_cpu_pct']} %"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"signalling load ({os.cpu_count()} cores, server in its own process)")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(json.dumps({"bench": "signalling_load", **vars(plan), **fig}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=int, default=10_000, help="idle carts to hold")
    parser.add_argument("--setups", type=int, default=100, help="concurrent session setups")
    parser.add_argument("--rate", type=int, default=500, help="relayed messages per second")
    parser.add_argument("--relay-seconds", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="small numbers, for CI")
    parser.add_argument("--idle-worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.idle_worker:
        url, tokens_file, start, count = args.idle_worker
        tokens = Path(tokens_file).read_text().split()[int(start) : int(start) + int(count)]
        return asyncio.run(_idle_worker(url, tokens))
    if args.quick:
        plan = Plan(idle=200, setups=20, rate=100, relay_s=3.0)
    else:
        plan = Plan(args.idle, args.setups, args.rate, args.relay_seconds)
    _print(asyncio.run(run(plan)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
