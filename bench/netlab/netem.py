"""The kernel path, used instead of the TUN emulator when ``tc netem`` exists.

UNTESTED HERE: the development machine's kernel has no netem, so only ``netem_args`` (pure)
is covered by tests. A veth pair joins the namespaces; each end's egress gets one netem
qdisc with rate, delay, jitter, loss and the queue limit. Rate traces and outages are
replayed by ``LinkLab`` with ``tc qdisc change`` at their times. Differences from the TUN
emulator: netem's queue limit is in packets (converted from ms assuming 1200-byte
packets), its jitter can reorder packets on some kernels, and there are no per-direction
counters or series.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import subprocess
import time
from typing import Any

from bench.netlab.link_model import DirectionParams
from bench.netlab.namespaces import (
    CART_IP,
    CART_NET,
    CLINIC_IP,
    CLINIC_NET,
    NamespacePair,
    ip,
    new_run_id,
)
from bench.netlab.profiles import Profile

VETH_NAME = "tclink0"
_ASSUMED_PACKET_BYTES = 1200


def netem_available() -> bool:
    """True if ``tc netem`` can be used, probed in a throwaway namespace."""
    pair = NamespacePair(f"probe-{new_run_id()}")
    try:
        ip("netns", "add", pair.cart)
        ip("-n", pair.cart, "link", "set", "lo", "up")
        probe = subprocess.run(
            ["tc", "-n", pair.cart, "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"],
            capture_output=True,
            check=False,
        )
        return probe.returncode == 0
    except (OSError, RuntimeError):
        return False
    finally:
        subprocess.run(["ip", "netns", "del", pair.cart], capture_output=True, check=False)


def netem_args(params: DirectionParams, t: float) -> list[str]:
    """netem options for ``params`` as they stand ``t`` seconds after the link's start."""
    rate = params.rate_at(t)
    limit = max(1, round(rate * params.queue_ms / 8 / _ASSUMED_PACKET_BYTES))
    args = ["limit", str(limit), "delay", f"{params.delay_ms}ms"]
    if params.jitter_ms > 0:
        # netem's jitter is the half-width of a uniform spread; ours is its std deviation.
        args += [f"{params.jitter_ms * 3**0.5:.3f}ms"]
    if rate <= 0:
        return [*args, "loss", "100%"]
    args += ["rate", f"{rate}kbit"]
    if params.overhead_bytes:
        args += [str(params.overhead_bytes)]
    ge = params.gilbert_elliott
    if ge is not None:
        args += [
            "loss", "gemodel", f"{100 * ge.p}%", f"{100 * ge.r}%",
            f"{100 * (1 - ge.loss_bad)}%", f"{100 * ge.loss_good}%",
        ]  # fmt: skip
    elif params.loss > 0:
        args += ["loss", "random", f"{100 * params.loss}%"]
    return args


def create_veth(pair: NamespacePair) -> None:
    """A veth pair with one end in each namespace, addressed like the TUN path."""
    # Made inside the namespaces, so parallel runs never share a device name.
    ip("-n", pair.cart, "link", "add", VETH_NAME, "type", "veth", "peer", "name", "tclink1",
       "netns", pair.clinic)  # fmt: skip
    ip("-n", pair.clinic, "link", "set", "tclink1", "name", VETH_NAME)
    for ns, address, peer in ((pair.cart, CART_IP, CLINIC_NET), (pair.clinic, CLINIC_IP, CART_NET)):
        ip("-n", ns, "addr", "add", f"{address}/24", "dev", VETH_NAME)
        ip("-n", ns, "link", "set", VETH_NAME, "up")
        ip("-n", ns, "route", "add", peer, "dev", VETH_NAME)


def apply(ns: str, params: DirectionParams, t: float, *, first: bool) -> None:
    """Set the egress of ``ns``'s veth end to ``params`` at time ``t``."""
    verb = "add" if first else "change"
    argv = ["tc", "-n", ns, "qdisc", verb, "dev", VETH_NAME, "root", "netem"]
    proc = subprocess.run([*argv, *netem_args(params, t)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.strip()}")


class NetemLink:
    """The ``LinkLab`` control requests, answered with ``tc`` instead of the emulator."""

    def __init__(self, pair: NamespacePair, profile: Profile) -> None:
        self._pair = pair
        self._params = {"up": profile.up, "down": profile.down}
        self._egress = {"up": pair.cart, "down": pair.clinic}
        self._epoch = time.monotonic()
        self._replay: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await asyncio.to_thread(create_veth, self._pair)
        for direction, params in self._params.items():
            await asyncio.to_thread(apply, self._egress[direction], params, 0.0, first=True)
        self._restart_replay()

    def _restart_replay(self, *, new_epoch: bool = True) -> None:
        if self._replay is not None:
            self._replay.cancel()
        if new_epoch:
            self._epoch = time.monotonic()
        self._replay = asyncio.create_task(self._replay_steps())

    async def _replay_steps(self) -> None:
        """Re-apply each direction at every trace step and outage edge."""
        edges = sorted(
            {t for p in self._params.values() for t, _ in p.rate_trace}
            | {t for p in self._params.values() for o in p.outages for t in o}
        )
        for edge in edges:
            if self._epoch + edge < time.monotonic():
                continue
            await asyncio.sleep(max(0.0, self._epoch + edge - time.monotonic()))
            for direction, params in self._params.items():
                await asyncio.to_thread(apply, self._egress[direction], params, edge, first=False)

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        cmd = message.get("cmd")
        t = time.monotonic() - self._epoch
        if cmd == "set":
            direction = str(message["direction"])
            if direction not in self._params:
                raise ValueError(f"direction must be 'up' or 'down', got {direction!r}")
            params = self._params[direction].with_changes(**message.get("params", {}))
            self._params[direction] = params
            await asyncio.to_thread(apply, self._egress[direction], params, t, first=False)
            self._restart_replay(new_epoch=False)
            return {"params": dataclasses.asdict(params)}
        if cmd == "stats":
            rates = {d: {"rate_kbps": p.rate_at(t)} for d, p in self._params.items()}
            return {"stats": {"t": t, "backend": "netem", **rates}}
        if cmd == "series":
            return {"series": []}
        if cmd == "restart_clock":
            self._restart_replay()
            return {}
        return {}

    async def close(self) -> None:
        if self._replay is not None:
            self._replay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._replay
