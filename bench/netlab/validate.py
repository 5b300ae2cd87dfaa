"""Measure the emulated link with real UDP sockets and compare with its configuration.

Per profile, both directions at once, three phases:

1. rate: a saturating stream of 1228-byte IP packets at 1.25× the rate; delivered IP
   bit rate in the steady part vs ``rate × (1 − average loss)`` (a lost packet has used
   the link). A rate trace or outage is replayed compressed (each step ~5 s) and every
   step measured on its own; an outage must deliver nothing.
2. delay and jitter: 60-byte probes spaced wider than the jitter's spread (so the
   no-reordering rule never bends the distribution), time-stamped with the monotonic
   clock both namespaces share. Mean one-way delay minus the probe's serialisation
   time vs ``delay_ms``; standard deviation vs ``jitter_ms``.
3. loss: dense 60-byte probes well below capacity, with the rate raised if the profile's
   is too low to give enough packets in reasonable time (loss is drawn per packet after
   serialisation, so the rate does not change it); lost share vs the average loss.

PASS within 5 % of the configured figure. A configured 0 needs a measured 0 (loss), or
jitter under 5 % of the delay. Prints a table and one JSON line; exit 0 only if all pass.
"""

from __future__ import annotations

import asyncio
import json
import math
import socket
import statistics
import struct
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from bench.netlab.lab import LinkLab
from bench.netlab.link_model import DirectionParams
from bench.netlab.namespaces import call_in_netns
from bench.netlab.profiles import Profile

TOLERANCE = 0.05
_PORT = 47000
_UDP_IP_OVERHEAD = 28
_BULK_PAYLOAD = 1200
_PROBE_PAYLOAD = 32
_HEADER = struct.Struct("!Id")  # sequence number, send time (time.monotonic)
_DIRECTIONS = ("up", "down")
_LOSS_PPS = 8000.0


@dataclass(frozen=True)
class Result:
    profile: str
    quantity: str
    direction: str
    unit: str
    configured: float
    measured: float
    passed: bool
    samples: int
    note: str = ""

    @property
    def error_pct(self) -> float | None:
        if self.configured == 0:
            return None
        return 100.0 * (self.measured - self.configured) / self.configured


@dataclass
class _Flow:
    """What one receiver saw: (arrival time, send time, sequence, IP size) per packet."""

    arrivals: list[tuple[float, float, int, int]]
    sent: int = 0


def _udp_socket(ns: str, bind_ip: str | None) -> socket.socket:
    def make() -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
        if bind_ip is not None:
            sock.bind((bind_ip, _PORT))
        return sock

    return call_in_netns(ns, make)


def _send(sock: socket.socket, dest: str, pps: float, payload: int, seconds: float) -> int:
    """Paced sender; returns how many datagrams the kernel accepted."""
    padding = bytes(payload - _HEADER.size)
    start = time.monotonic()
    sent = 0
    due = 0
    while True:
        now = time.monotonic()
        if now - start >= seconds:
            return sent
        due = int((now - start) * pps) + 1
        while due > sent:
            try:
                sock.sendto(_HEADER.pack(sent, time.monotonic()) + padding, (dest, _PORT))
            except BlockingIOError:
                break
            sent += 1
        time.sleep(min(0.001, max(0.0, start + due / pps - time.monotonic())))


def _send_into(
    sock: socket.socket, dest: str, pps: float, payload: int, seconds: float, flow: _Flow
) -> None:
    flow.sent = _send(sock, dest, pps, payload, seconds)


def _receive(sock: socket.socket, flow: _Flow, stop: threading.Event) -> None:
    sock.settimeout(0.1)
    while not stop.is_set():
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        now = time.monotonic()
        seq, sent_at = _HEADER.unpack_from(data)
        flow.arrivals.append((now, sent_at, seq, len(data) + _UDP_IP_OVERHEAD))


def _run_flows(
    lab: LinkLab, plans: dict[str, tuple[float, int]], seconds: float, drain: float
) -> dict[str, _Flow]:
    """Send ``pps`` datagrams of ``payload`` bytes per direction for ``seconds``."""
    ends = {
        "up": (lab.cart_ns, lab.clinic_ns, lab.clinic_ip),
        "down": (lab.clinic_ns, lab.cart_ns, lab.cart_ip),
    }
    flows: dict[str, _Flow] = {}
    stop = threading.Event()
    threads = []
    sockets = []
    for direction, (pps, payload) in plans.items():
        src_ns, dst_ns, dst_ip = ends[direction]
        rx = _udp_socket(dst_ns, dst_ip)
        tx = _udp_socket(src_ns, None)
        sockets += [rx, tx]
        flow = flows[direction] = _Flow([])

        threads.append(threading.Thread(target=_receive, args=(rx, flow, stop)))
        threads.append(
            threading.Thread(target=_send_into, args=(tx, dst_ip, pps, payload, seconds, flow))
        )
    for thread in threads:
        thread.start()
    time.sleep(seconds + drain)
    stop.set()
    for thread in threads:
        thread.join()
    for sock in sockets:
        sock.close()
    return flows


def _rate_kbps(flow: _Flow, t0: float, t1: float) -> tuple[float, int]:
    """Delivered IP kbit/s between t0 and t1 (arrival times) and the packet count."""
    inside = [size for arrival, _, _, size in flow.arrivals if t0 <= arrival < t1]
    return sum(inside) * 8 / (t1 - t0) / 1000.0, len(inside)


def _steps(params: DirectionParams) -> list[tuple[float, float]]:
    """(start_s, kbps) of each step of the rate trace and outages, from t=0."""
    times = sorted(
        {0.0, *(t for t, _ in params.rate_trace), *(t for o in params.outages for t in o)}
    )
    return [(t, params.rate_at(t)) for t in times]


def _judge(
    profile: str,
    quantity: str,
    direction: str,
    unit: str,
    configured: float,
    measured: float,
    samples: int,
    zero_tolerance: float = 0.0,
    note: str = "",
) -> Result:
    tolerance = TOLERANCE * configured if configured else zero_tolerance
    passed = abs(measured - configured) <= tolerance
    return Result(profile, quantity, direction, unit, configured, measured, passed, samples, note)


async def _rate_phase(lab: LinkLab, scale: float) -> list[Result]:
    profile = lab.profile
    steps = {d: _steps(getattr(profile, d)) for d in _DIRECTIONS}
    stepped = max(len(s) for s in steps.values()) > 1
    step_s = (5.0 if stepped else 10.0) * scale
    seconds = max(len(s) for s in steps.values()) * step_s
    plans = {}
    for direction in _DIRECTIONS:
        params: DirectionParams = getattr(profile, direction)
        if len(steps[direction]) > 1:
            trace = [(i * step_s, kbps) for i, (_, kbps) in enumerate(steps[direction])]
            await lab.set(direction, rate_kbps=params.rate_kbps, rate_trace=trace, outages=[])
        top = max(kbps for _, kbps in steps[direction])
        pps = 1.25 * top * 1000 / 8 / (_BULK_PAYLOAD + _UDP_IP_OVERHEAD)
        plans[direction] = (pps, _BULK_PAYLOAD)
    await lab.restart_clock()
    t_start = time.monotonic()
    cpu_before = (await lab.stats())["cpu_s"]
    flows = await asyncio.to_thread(_run_flows, lab, plans, seconds, 1.0)
    cpu_pct = 100 * ((await lab.stats())["cpu_s"] - cpu_before) / (time.monotonic() - t_start)
    note = f"emulator CPU {cpu_pct:.0f} % of a core, both directions saturated"
    results = []
    for direction in _DIRECTIONS:
        params = getattr(profile, direction)
        for i, (t_profile, kbps) in enumerate(steps[direction]):
            # Skip the first second of a step (queue filling, delay line) and its last 0.5 s.
            t0 = t_start + i * step_s + 1.0 + params.delay_ms / 1000
            t1 = t_start + (i + 1) * step_s - 0.5
            measured, count = _rate_kbps(flows[direction], t0, t1)
            label = f"rate from {t_profile:.0f} s" if len(steps[direction]) > 1 else "rate"
            if kbps == 0:
                label = f"down from {t_profile:.0f} s"
            expected = kbps * (1 - params.average_loss)
            results.append(
                _judge(
                    profile.name, label, direction, "kbit/s", expected, measured, count, note=note
                )
            )
        # The later phases run at the first rate, without trace steps or outages.
        await lab.set(direction, rate_kbps=params.rate_kbps, outages=[])
    return results


async def _delay_phase(lab: LinkLab, scale: float) -> list[Result]:
    profile = lab.profile
    jitter = max(profile.up.jitter_ms, profile.down.jitter_ms)
    spacing_s = max(0.02, (2 * math.sqrt(3) * jitter + 5) / 1000)
    seconds = max(8.0, 500 * spacing_s) * scale
    plans = {d: (1 / spacing_s, _PROBE_PAYLOAD) for d in _DIRECTIONS}
    flows = await asyncio.to_thread(_run_flows, lab, plans, seconds, 1.5)
    results = []
    for direction in _DIRECTIONS:
        params: DirectionParams = getattr(profile, direction)
        serialisation_ms = (_PROBE_PAYLOAD + _UDP_IP_OVERHEAD) * 8 / params.rate_kbps
        delays = [(arrival - sent) * 1000 for arrival, sent, _, _ in flows[direction].arrivals]
        mean = statistics.fmean(delays) - serialisation_ms
        spread = statistics.pstdev(delays)
        n = len(delays)
        results.append(_judge(profile.name, "delay", direction, "ms", params.delay_ms, mean, n))
        results.append(
            _judge(
                profile.name,
                "jitter",
                direction,
                "ms",
                params.jitter_ms,
                spread,
                n,
                zero_tolerance=TOLERANCE * params.delay_ms,
            )
        )
    return results


def _loss_variance(params: DirectionParams) -> float:
    """Variance of one packet's loss indicator, times the burst correlation factor.

    ``n ×`` the variance of the measured loss share: Bernoulli ``p(1 − p)``, plus for
    Gilbert–Elliott the covariance of the chain's states, summed over all lags.
    """
    p = params.average_loss
    variance = p * (1 - p)
    ge = params.gilbert_elliott
    if ge is not None:
        rho = 1 - ge.p - ge.r
        step = (ge.loss_bad - ge.loss_good) ** 2 * ge.bad_fraction * (1 - ge.bad_fraction)
        variance += 2 * step * rho / (1 - rho)
    return variance


async def _loss_phase(lab: LinkLab, scale: float) -> list[Result]:
    profile = lab.profile
    pps = _LOSS_PPS
    probe_bits = (_PROBE_PAYLOAD + _UDP_IP_OVERHEAD) * 8
    loss_rate_kbps = 2 * pps * probe_bits / 1000
    # Packets for a 95 % interval of ±5 % around the loss, per direction.
    lossy = [d for d in (profile.up, profile.down) if d.average_loss > 0]
    per_packet = max((_loss_variance(d) / d.average_loss**2 for d in lossy), default=0.0)
    needed = per_packet * (1.96 / TOLERANCE) ** 2
    seconds = min(max(needed / pps, 10.0), 30.0) * scale
    for direction in _DIRECTIONS:
        params: DirectionParams = getattr(profile, direction)
        await lab.set(direction, rate_kbps=max(params.rate_kbps, loss_rate_kbps), queue_ms=500.0)
    before = await lab.stats()
    plans = {d: (pps, _PROBE_PAYLOAD) for d in _DIRECTIONS}
    flows = await asyncio.to_thread(
        _run_flows, lab, plans, seconds, 1.0 + profile.up.delay_ms / 500
    )
    after = await lab.stats()
    results = []
    for direction in _DIRECTIONS:
        params = getattr(profile, direction)
        flow = flows[direction]
        received = len({seq for _, _, seq, _ in flow.arrivals})
        measured = 1 - received / flow.sent if flow.sent else 1.0
        seen = after[direction]["packets_in"] - before[direction]["packets_in"]
        queue_drops = after[direction]["queue_drops"] - before[direction]["queue_drops"]
        note = (
            f"{flow.sent} sent, {flow.sent - seen} dropped before the link, {queue_drops} by queue"
        )
        p = params.average_loss
        if p > 0:
            half_width = 1.96 * math.sqrt(_loss_variance(params) / flow.sent) / p * 100
            note += f", 95 % interval ±{half_width:.1f} %"
        results.append(
            _judge(
                profile.name, "loss", direction, "%", 100 * p, 100 * measured, flow.sent, note=note
            )
        )
    return results


def _format(results: Sequence[Result]) -> str:
    header = (
        f"{'profile':10} {'quantity':22} {'dir':4} {'configured':>12} {'measured':>12} "
        f"{'error':>8}  result  n"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        error = f"{r.error_pct:+.1f}%" if r.error_pct is not None else "-"
        verdict = "PASS" if r.passed else "FAIL"
        lines.append(
            f"{r.profile:10} {r.quantity:22} {r.direction:4} {r.configured:9.2f} {r.unit:2} "
            f"{r.measured:9.2f} {r.unit:2} {error:>8}  {verdict:6}  {r.samples}"
            + (f"  ({r.note})" if r.note else "")
        )
    return "\n".join(lines)


async def validate_profile(profile: Profile, *, seed: int | None, scale: float) -> list[Result]:
    async with LinkLab(profile, seed=seed) as lab:
        results = await _rate_phase(lab, scale)
        results += await _delay_phase(lab, scale)
        results += await _loss_phase(lab, scale)
    return results


async def run_validation(profiles: Sequence[Profile], *, seed: int | None, scale: float) -> int:
    results: list[Result] = []
    started = time.monotonic()
    for profile in profiles:
        profile_results = await validate_profile(profile, seed=seed, scale=scale)
        print(_format(profile_results), flush=True)
        results += profile_results
    passed = all(r.passed for r in results)
    print()
    print(_format(results))
    count = sum(r.passed for r in results)
    print(f"{'PASS' if passed else 'FAIL'}: {count}/{len(results)} within 5 %")
    summary = {
        "bench": "netlab-validate",
        "pass": passed,
        "seconds": round(time.monotonic() - started, 1),
        "results": [{**asdict(r), "error_pct": r.error_pct} for r in results],
    }
    print(json.dumps(summary))
    return 0 if passed else 1
