"""Fault injection for issue 10: outages, flapping, server and agent killed mid-consultation.

`python -m bench.faults run [--only outage-5 ...] [--logs DIR]` (as root) runs each fault
in a fresh link lab (bench/netlab, profile `good`; `long-rtt` on `satellite` with 750 ms
each way): the server and an aiortc specialist in the clinic
namespace, the cart agent (simulated devices) in the cart namespace, each a process of
its own. It prints a table and one JSON line per fault: time to detect (the specialist's
watchdog reports the loss), time to media back (first new video frame at the specialist
after the link returns or the process restarts), vitals sent (numbered by the cart) vs
received (unique, at the specialist), duplicates dropped, and whether every still taken
during the fault arrived whole and was stored once on the server.

The same processes are started as `python -m bench.faults server|specialist|agent ...`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

PORT = 8080
SPECIALTY = "cardiology"
USERNAME = "drfault"


def emit(**fields: Any) -> None:
    print(json.dumps({"t": time.monotonic(), **fields}), flush=True)


async def _stdin_lines() -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


# --- the three processes -------------------------------------------------------------------


async def serve(host: str, data_dir: Path, setup: bool) -> None:
    from telecart.config import ServerConfig
    from telecart.server.app import create_app
    from telecart.server.app_keys import STORE
    from telecart.server.credentials import hash_password, new_token, token_hash
    from tests.server.harness import PASSWORD

    app = create_app(ServerConfig(host=host, port=PORT, data_dir=data_dir))
    runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, PORT).start()
        token = ""
        if setup:
            store = app[STORE]
            token = new_token()
            await store.add_cart("Fault cart", "Fault clinic", token_hash(token))
            password_hash = await asyncio.to_thread(hash_password, PASSWORD)
            await store.add_specialist(USERNAME, "Dr Fault", password_hash, (SPECIALTY,))
        emit(ev="ready", token=token)
        stdin = await _stdin_lines()
        await stdin.read()
    finally:
        await runner.cleanup()


@dataclass
class _Server:
    """What `PythonSpecialist` needs of a server it did not start."""

    host: str

    @property
    def base(self) -> str:
        return f"http://{self.host}:{PORT}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{PORT}/ws"

    async def login(self, username: str) -> dict[str, str]:
        import aiohttp

        from tests.server.harness import PASSWORD

        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{self.base}/api/login", json={"username": username, "password": PASSWORD}
            ) as resp:
                resp.raise_for_status()
                return {"telecart_session": resp.cookies["telecart_session"].value}


async def specialist(host: str) -> None:
    from telecart.cart_agent.ice_consent import install_consent_fix
    from telecart.cart_agent.nack_retry import install_nack_retry
    from tests.reliability.specialist import ReliableSpecialist

    # The real specialist is Chrome, whose consent check holds at a 1.5 s round trip;
    # this aiortc stand-in needs the cart's fix too, or it drops the call after 30 s.
    install_consent_fix()
    # Chrome also asks again for a lost retransmission; aiortc's receiver asks once and
    # froze the picture for 13-40 s at this round trip without the cart's fix.
    install_nack_retry()

    peer = ReliableSpecialist(_Server(host), USERNAME)  # type: ignore[arg-type]
    await peer.connect()
    await peer.accept(await peer.wait_queue(timeout_s=60))
    stdin = asyncio.ensure_future((await _stdin_lines()).read())
    frames, moved_at, events_seen = 0, time.monotonic(), 0
    next_stats = 0.0
    try:
        while not stdin.done():
            await asyncio.sleep(0.02)
            now = time.monotonic()
            total = sum(peer.received.video_frames.values())
            if total != frames:
                if now - moved_at >= 0.5:
                    emit(ev="frames_back", gap_s=round(now - moved_at, 3))
                    logging.info(
                        "video frames back after %.2f s (%s)", now - moved_at,
                        peer.received.video_frames,
                    )  # fmt: skip
                frames, moved_at = total, now
            for at, state in peer.link_events[events_seen:]:
                print(json.dumps({"t": at, "ev": "link", "state": state}), flush=True)
            events_seen = len(peer.link_events)
            if now >= next_stats:
                next_stats = now + 0.5
                emit(
                    ev="stats",
                    vitals_seen=peer.vitals_seen,
                    unique=len(peer.received.vitals),
                    duplicates=peer.duplicates,
                    gaps=peer.gaps,
                    offers=peer.offers,
                    stills={s.header["still_id"]: s.sha256 for s in peer.received.stills},
                    state=peer.session.state.value if peer.session else None,
                    video_at=moved_at,
                )
    finally:
        await peer.close()


def _rung(cart: Any) -> str | None:
    """The quality rung the cart sends at, for a fault's note."""
    consultation = cart.consultation
    allocation = consultation.rate_controller.allocation if consultation else None
    return allocation.rung.label if allocation else None


async def agent(url: str, token: str, data_dir: Path) -> None:
    from telecart.cart_agent.agent import CartAgent, ConsultationRequest
    from telecart.config import AgentConfig
    from tests.cart_agent.conftest import small_cart

    config = AgentConfig(server_url=url, token=token, data_dir=data_dir)
    cart = CartAgent(config, small_cart(), request=ConsultationRequest(SPECIALTY))
    await cart.start()
    stdin = await _stdin_lines()
    tasks: set[asyncio.Task[Any]] = set()

    async def stats() -> None:
        while True:
            await asyncio.sleep(0.5)
            outbox = cart.outbox
            if outbox is None:
                continue
            buffer = outbox.vitals.buffer
            emit(
                ev="stats",
                last_seq=buffer.last_seq,
                captured=outbox.vitals.captured,
                acked=buffer.acked,
                dropped=buffer.dropped,
                stored={k: v["still_id"] for k, v in outbox.stills.stored.items()},
                renegotiations=cart.reconnector.renegotiations,
                rung=_rung(cart),
                rtx=cart.consultation.rate_controller.retransmissions
                if cart.consultation
                else (0, 0),
            )

    async def still() -> None:
        consultation = cart.consultation
        if consultation is not None:
            taken = await consultation.take_still("exam")
            emit(ev="still", still_id=taken.still_id, sha256=taken.sha256)

    tasks.add(asyncio.create_task(stats()))
    try:
        while line := (await stdin.readline()).decode().strip():
            if line == "still":
                task = asyncio.create_task(still())
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            elif line == "quiesce":  # no new readings: what was taken can all be acked
                await cart._feed.close()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await cart.close()


# --- the controller ------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    process: asyncio.subprocess.Process
    lines: list[dict[str, Any]] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    def start_reading(self) -> None:
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            with contextlib.suppress(ValueError):
                self.lines.append(json.loads(raw))

    def last(self, ev: str) -> dict[str, Any] | None:
        return next((line for line in reversed(self.lines) if line.get("ev") == ev), None)

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{line}\n".encode())

    async def stop(self, kill: bool = False) -> None:
        if self.process.returncode is None:
            if kill:
                self.process.send_signal(signal.SIGKILL)
            elif self.process.stdin is not None:
                self.process.stdin.close()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self.reader is not None:
            await asyncio.wait_for(self.reader, 5)


async def _until(predicate: Callable[[], object], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return False


@dataclass
class FaultResult:
    fault: str
    detect_s: float | None
    media_back_s: float | None
    video_back_s: float | None
    vitals_sent: int
    vitals_received: int
    duplicates_dropped: int
    stills_taken: int
    stills_intact: bool
    note: str = ""


class FaultRig:
    """Server + specialist in the clinic namespace, the agent in the cart namespace."""

    def __init__(self, lab: Any, workdir: Path, logs: Path | None = None) -> None:
        self.lab = lab
        self.workdir = workdir
        self.logs = logs
        self.server: Proc | None = None
        self.specialist: Proc | None = None
        self.agents: list[Proc] = []
        self.token = ""

    async def _spawn(self, name: str, ns: str, argv: list[str]) -> Proc:
        stderr: Any = asyncio.subprocess.DEVNULL
        if self.logs is not None:
            self.logs.mkdir(parents=True, exist_ok=True)
            stderr = (self.logs / f"{name}.log").open("a")
            argv = [*argv, "--log"]
        process = await self.lab.run_in(
            ns,
            [sys.executable, "-m", "bench.faults", *argv],
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
        )
        if stderr is not asyncio.subprocess.DEVNULL:
            stderr.close()
        proc = Proc(name, process)
        proc.start_reading()
        return proc

    async def start_server(self, setup: bool) -> None:
        argv = ["server", "--host", self.lab.clinic_ip, "--data", str(self.workdir / "server")]
        self.server = await self._spawn("server", self.lab.clinic_ns, argv + ["--setup"] * setup)
        server = self.server
        if not await _until(lambda: server.last("ready"), 30):
            raise RuntimeError("the server did not start")
        if setup:
            ready = server.last("ready")
            assert ready is not None
            self.token = ready["token"]

    async def start_agent(self) -> Proc:
        url = f"ws://{self.lab.clinic_ip}:{PORT}/ws"
        argv = [
            "agent",
            "--url",
            url,
            f"--token={self.token}",
            "--data",
            str(self.workdir / "cart"),
        ]
        proc = await self._spawn("agent", self.lab.cart_ns, argv)
        self.agents.append(proc)
        return proc

    async def start(self) -> None:
        await self.start_server(setup=True)
        await self.start_agent()
        self.specialist = await self._spawn(
            "specialist", self.lab.clinic_ns, ["specialist", "--host", self.lab.clinic_ip]
        )
        if not await _until(lambda: self.spec_stat("vitals_seen") >= 5, 60):
            raise RuntimeError("the consultation did not start")

    def spec_stat(self, key: str) -> Any:
        assert self.specialist is not None
        line = self.specialist.last("stats")
        return line[key] if line else 0

    def agent_stat(self, key: str) -> Any:
        line = self.agents[-1].last("stats")
        return line[key] if line else 0

    def detected_after(self, t0: float) -> float | None:
        assert self.specialist is not None
        for line in self.specialist.lines:
            if line.get("ev") == "link" and line["state"] != "connected" and line["t"] >= t0:
                return float(line["t"]) - t0
        return None

    def media_back_after(self, t1: float) -> float | None:
        """RTP from the cart reaches the specialist again (its watchdog says connected)."""
        assert self.specialist is not None
        for line in self.specialist.lines:
            if line.get("ev") == "link" and line["state"] == "connected" and line["t"] >= t1:
                return float(line["t"]) - t1
        return None

    def video_back_after(self, t1: float) -> float | None:
        """A new decoded video frame at the specialist."""
        assert self.specialist is not None
        for line in self.specialist.lines:
            if line.get("ev") == "frames_back" and line["t"] >= t1:
                return float(line["t"]) - t1
        return None

    def video_moving_within(self, seconds: float) -> bool:
        """The specialist decoded a video frame in the last `seconds`."""
        line = self.spec_last("stats")
        return line is not None and time.monotonic() - float(line["video_at"]) < seconds

    def spec_last(self, ev: str) -> dict[str, Any] | None:
        assert self.specialist is not None
        return self.specialist.last(ev)

    async def take_still(self) -> None:
        self.agents[-1].send("still")

    async def settle(self) -> tuple[int, int, int, bool, int]:
        """Wait for every vital and still to be acknowledged; the delivery figures."""
        self.agents[-1].send("quiesce")
        await _until(
            lambda: (
                self.agent_stat("acked") == self.agent_stat("last_seq")
                and self.spec_stat("vitals_seen") >= self.agent_stat("last_seq") > 0
            ),
            30,
        )
        taken = [line for a in self.agents for line in a.lines if line.get("ev") == "still"]
        await _until(
            lambda: (
                all(t["still_id"] in self.agent_stat("stored") for t in taken)
                and all(t["still_id"] in self.spec_stat("stills") for t in taken)
            ),
            30,
        )
        got = self.spec_stat("stills")
        intact = all(got.get(t["still_id"]) == t["sha256"] for t in taken)
        intact &= all(t["still_id"] in self.agent_stat("stored") for t in taken)
        assert self.specialist is not None
        spec_lines = [line for line in self.specialist.lines if line.get("ev") == "stats"]
        # A moment when the cart had every reading acknowledged: what it had numbered
        # then against what the specialist held then.
        earlier = sum(int((a.last("stats") or {}).get("captured", 0)) for a in self.agents[:-1])
        for line in reversed([x for x in self.agents[-1].lines if x.get("ev") == "stats"]):
            if line["acked"] == line["last_seq"]:
                held = next((x for x in spec_lines if x["vitals_seen"] == line["last_seq"]), None)
                if held is not None:
                    sent = earlier + int(line["captured"])
                    return sent, held["unique"], held["duplicates"], intact, len(taken)
        return -1, self.spec_stat("unique"), self.spec_stat("duplicates"), intact, len(taken)

    async def close(self) -> None:
        for proc in [self.specialist, *self.agents, self.server]:
            if proc is not None:
                await proc.stop()


async def _link(lab: Any, down: bool) -> None:
    await lab.set_uplink(down=down)
    await lab.set_downlink(down=down)


async def fault_outage(rig: FaultRig, seconds: float) -> FaultResult:
    t0 = time.monotonic()
    await _link(rig.lab, True)
    await asyncio.sleep(min(1.0, seconds / 2))
    await rig.take_still()
    await asyncio.sleep(seconds - min(1.0, seconds / 2))
    t1 = time.monotonic()
    await _link(rig.lab, False)
    await _until(lambda: rig.video_back_after(t1) is not None, 30)
    sent, got, dups, intact, taken = await rig.settle()
    return FaultResult(
        f"outage {seconds:.0f} s", rig.detected_after(t0), rig.media_back_after(t1),
        rig.video_back_after(t1), sent, got, dups, taken, intact,
    )  # fmt: skip


async def fault_flapping(rig: FaultRig, seconds: float) -> FaultResult:
    detects: list[float | None] = []
    backs: list[float | None] = []
    videos: list[float | None] = []
    start = time.monotonic()
    while time.monotonic() - start + 10 <= seconds:
        await asyncio.sleep(8)
        t0 = time.monotonic()
        await _link(rig.lab, True)
        await rig.take_still()
        await asyncio.sleep(2)
        t1 = time.monotonic()
        await _link(rig.lab, False)
        detects.append(rig.detected_after(t0))
        await _until(lambda t1=t1: rig.video_back_after(t1) is not None, 8)
        backs.append(rig.media_back_after(t1))
        videos.append(rig.video_back_after(t1))
    sent, got, dups, intact, taken = await rig.settle()
    worst = [b for b in backs if b is not None]
    found = [d for d in detects if d is not None]
    return FaultResult(
        f"flapping 2 s/10 s, {seconds:.0f} s",
        max(found) if found else None,
        max(worst) if len(worst) == len(backs) else None,
        max((v for v in videos if v is not None), default=None),
        sent, got, dups, taken, intact,
        note=f"{len(backs)} cuts; detected {len(found)}, media back after {len(worst)}, "
        f"video back after {sum(v is not None for v in videos)} (worst case given)",
    )  # fmt: skip


async def fault_server_kill(rig: FaultRig, down_s: float = 2.0) -> FaultResult:
    assert rig.server is not None
    frames_before = len(rig.specialist.lines) if rig.specialist else 0
    t0 = time.monotonic()
    await rig.server.stop(kill=True)
    await rig.take_still()
    await asyncio.sleep(down_s)
    await rig.start_server(setup=False)
    await asyncio.sleep(3)
    assert rig.specialist is not None
    gaps = [
        line["gap_s"]
        for line in rig.specialist.lines[frames_before:]
        if line.get("ev") == "frames_back" and line["t"] >= t0
    ]
    sent, got, dups, intact, taken = await rig.settle()
    return FaultResult(
        "server SIGKILL + restart", rig.detected_after(t0), None, max(gaps) if gaps else 0.0,
        sent, got, dups, taken, intact,
        note="media is peer to peer: 'video back' is the longest frame gap (0 = none ≥ 0.5 s)",
    )  # fmt: skip


async def fault_agent_kill(rig: FaultRig) -> FaultResult:
    t0 = time.monotonic()
    await rig.agents[-1].stop(kill=True)
    await asyncio.sleep(1.0)
    t1 = time.monotonic()
    await rig.start_agent()
    await _until(lambda: rig.video_back_after(t1) is not None, 40)
    await asyncio.sleep(2)
    await rig.take_still()
    sent, got, dups, intact, taken = await rig.settle()
    return FaultResult(
        "agent SIGKILL + restart", rig.detected_after(t0), rig.media_back_after(t1),
        rig.video_back_after(t1), sent, got, dups, taken, intact,
        note="media back from the restart; vitals unacked in the killed agent's memory "
        "are lost (its 'sent' counts them)",
    )  # fmt: skip


async def fault_long_rtt(rig: FaultRig, seconds: float = 90.0) -> FaultResult:
    """Not a fault: a 1.5 s round trip (750 ms each way, on the satellite profile) for
    longer than aioice's own 30 s consent limit. The call must hold, unalarmed."""
    assert rig.specialist is not None
    for direction in ("up", "down"):
        await rig.lab.set(direction, delay_ms=750)
    t0 = time.monotonic()
    renegotiations = rig.agent_stat("renegotiations")
    await asyncio.sleep(seconds / 2)
    await rig.take_still()
    await asyncio.sleep(seconds / 2)
    alarms = [
        line
        for line in rig.specialist.lines
        if line.get("ev") == "link" and line["state"] != "connected" and line["t"] >= t0 + 5
    ]
    moving = rig.video_moving_within(5.0)
    gaps = [
        float(line["gap_s"])
        for line in rig.specialist.lines
        if line.get("ev") == "frames_back" and line["t"] >= t0
    ]
    rung = rig.agent_stat("rung")
    resent, dropped = rig.agent_stat("rtx") or (0, 0)
    sent, got, dups, intact, taken = await rig.settle()
    held = not alarms and moving and rig.agent_stat("renegotiations") == renegotiations
    return FaultResult(
        "1.5 s round trip, 90 s", None, None, max(gaps, default=0.0),
        sent, got, dups, taken, intact,
        note=f"call held: {'yes' if held else 'NO'}; {len(alarms)} loss alarms after the "
        f"first 5 s, {rig.agent_stat('renegotiations') - renegotiations} renegotiations, "
        f"video {'still' if moving else 'not'} decoding at the end; {len(gaps)} frame gaps "
        f"≥ 0.5 s ('video back' is the longest); cart at the end: {rung}; {resent} "
        f"retransmissions, {dropped} dropped by the cap",
    )  # fmt: skip


FAULTS: dict[str, Callable[[FaultRig], Awaitable[FaultResult]]] = {
    "long-rtt": fault_long_rtt,
    "outage-5": lambda rig: fault_outage(rig, 5),
    "outage-60": lambda rig: fault_outage(rig, 60),
    "server-kill": fault_server_kill,
    "agent-kill": fault_agent_kill,
    "flapping": lambda rig: fault_flapping(rig, 120),
}


async def run_fault(name: str, logs: Path | None = None) -> FaultResult:
    from bench.netlab import LinkLab

    profile = "satellite" if name == "long-rtt" else "good"
    with tempfile.TemporaryDirectory(prefix="telecart-faults-") as tmp:
        async with LinkLab(profile=profile) as lab:
            rig = FaultRig(lab, Path(tmp), logs / name if logs else None)
            try:
                await rig.start()
                await asyncio.sleep(3)
                return await FAULTS[name](rig)
            finally:
                await rig.close()


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


async def _main(names: list[str], logs: Path | None) -> int:
    results = []
    for name in names:
        result = await run_fault(name, logs)
        results.append(result)
        print(json.dumps({"fault": name, **result.__dict__}), flush=True)
    print("| fault | detect s | RTP back s | video frame back s | vitals sent / received "
          "| dup dropped | stills |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for r in results:
        stills = f"{r.stills_taken} {'intact' if r.stills_intact else 'NOT intact'}"
        print(
            f"| {r.fault} | {_fmt(r.detect_s)} | {_fmt(r.media_back_s)} | "
            f"{_fmt(r.video_back_s)} | "
            f"{r.vitals_sent} / {r.vitals_received} | {r.duplicates_dropped} | {stills} |"
        )
    for r in results:
        if r.note:
            print(f"- {r.fault}: {r.note}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode")
    run = sub.add_parser("run")
    run.add_argument("--only", nargs="*", choices=sorted(FAULTS), default=list(FAULTS))
    run.add_argument("--logs", type=Path, help="keep each process's log in LOGS/FAULT/")
    server = sub.add_parser("server")
    server.add_argument("--host", required=True)
    server.add_argument("--data", type=Path, required=True)
    server.add_argument("--setup", action="store_true")
    spec = sub.add_parser("specialist")
    spec.add_argument("--host", required=True)
    cart = sub.add_parser("agent")
    cart.add_argument("--url", required=True)
    cart.add_argument("--token", required=True)
    cart.add_argument("--data", type=Path, required=True)
    for process in (server, spec, cart):
        process.add_argument("--log", action="store_true", help="log at INFO to stderr")
    args = parser.parse_args()
    if getattr(args, "log", False):
        logging.basicConfig(
            level=logging.INFO,
            format="%(asctime)s.%(msecs)03d %(name)s %(levelname)s %(message)s",
            datefmt="%H:%M:%S",
        )
    if args.mode == "server":
        asyncio.run(serve(args.host, args.data, args.setup))
    elif args.mode == "specialist":
        asyncio.run(specialist(args.host))
    elif args.mode == "agent":
        asyncio.run(agent(args.url, args.token, args.data))
    else:
        names = getattr(args, "only", None) or list(FAULTS)
        return asyncio.run(_main(names, getattr(args, "logs", None)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
