"""Network preflight to the telecart server: DNS, TCP, WebSocket auth, RTT/jitter/loss,
TURN allocation with issued credentials, upload throughput, and a video verdict.

Thresholds (docs/devices.md, "Network verdict"): video is fine at >= 500 kbit/s up,
<= 2 % loss and <= 300 ms RTT; below 150 kbit/s up or above 5 % loss video is reduced
to stills (WARN); in between, reduced video quality (WARN).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import statistics
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from aioice.turn import create_turn_endpoint

from .devtest_report import CheckResult, Result

DEVICE = "network"
PINGS = 20
PING_INTERVAL_S = 0.05
PING_TIMEOUT_S = 1.0
SPEEDTEST_BYTES = (256 * 1024, 2 * 1024 * 1024)
VIDEO_OK_KBPS = 500
STILLS_ONLY_KBPS = 150
LOSS_OK_PCT = 2.0
LOSS_STILLS_PCT = 5.0
RTT_OK_MS = 300.0


@dataclass
class LinkFigures:
    rtt_ms: float | None = None
    jitter_ms: float | None = None
    loss_pct: float | None = None
    upload_kbps: float | None = None


def http_base(server_url: str) -> str:
    """ws://host:port/ws -> http://host:port"""
    parts = urlsplit(server_url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, "", "", ""))


def _turn_targets(ice_servers: list[dict[str, Any]]) -> list[tuple[str, str, int, str, str, str]]:
    """(url, host, port, transport, username, credential) for each turn:/turns: URL."""
    out = []
    for server in ice_servers:
        urls = server.get("urls", [])
        for url in [urls] if isinstance(urls, str) else urls:
            if not url.startswith(("turn:", "turns:")):
                continue
            scheme, _, rest = url.partition(":")
            hostport, _, query = rest.partition("?")
            host, _, port_text = hostport.rpartition(":")
            if not host:
                host, port_text = hostport, "5349" if scheme == "turns" else "3478"
            transport = (
                "udp" if "transport=udp" in query or (not query and scheme == "turn") else "tcp"
            )
            if scheme == "turns":
                transport = "tls"
            out.append(
                (
                    url,
                    host,
                    int(port_text),
                    transport,
                    server.get("username", ""),
                    server.get("credential", ""),
                )
            )
    return out


async def _turn_allocate(host: str, port: int, transport: str, username: str, password: str) -> str:
    endpoint, _ = await asyncio.wait_for(
        create_turn_endpoint(
            asyncio.DatagramProtocol,
            (host, port),
            username,
            password,
            lifetime=60,
            ssl=transport == "tls" or None,
            transport="udp" if transport == "udp" else "tcp",
        ),
        5,
    )
    try:
        relayed = endpoint.get_extra_info("sockname")
    finally:
        endpoint.close()
    return f"relay {relayed[0]}:{relayed[1]}"


def verdict(figures: LinkFigures) -> CheckResult:
    up, loss, rtt = figures.upload_kbps, figures.loss_pct, figures.rtt_ms
    value = (
        f"up {up:.0f} kbit/s, loss {loss:.1f} %, RTT {rtt:.0f} ms"
        if up is not None and loss is not None and rtt is not None
        else "incomplete"
    )
    if up is None or loss is None or rtt is None:
        return CheckResult(
            DEVICE, "video verdict", "WARN", value, "some measurements failed: see the lines above"
        )
    if up < STILLS_ONLY_KBPS or loss > LOSS_STILLS_PCT:
        return CheckResult(
            DEVICE,
            "video verdict",
            "WARN",
            value,
            "video will be reduced to stills: move the cart or improve the link",
        )
    if up < VIDEO_OK_KBPS or loss > LOSS_OK_PCT or rtt > RTT_OK_MS:
        return CheckResult(
            DEVICE, "video verdict", "WARN", value, "video will run at reduced quality"
        )
    return CheckResult(DEVICE, "video verdict", "PASS", value + ": video consultation OK")


async def _ping(ws: aiohttp.ClientWebSocketResponse) -> tuple[list[float], int]:
    rtts: list[float] = []
    lost = 0
    for _ in range(PINGS):
        ping_id = uuid.uuid4().hex[:8]
        sent = time.perf_counter()
        await ws.send_json({"v": 1, "type": "ping", "id": ping_id})
        try:
            async with asyncio.timeout(PING_TIMEOUT_S):
                while True:
                    message = await ws.receive_json()
                    if message.get("type") == "pong" and message.get("id") == ping_id:
                        rtts.append((time.perf_counter() - sent) * 1000)
                        break
        except TimeoutError:
            lost += 1
        await asyncio.sleep(PING_INTERVAL_S)
    return rtts, lost


async def _upload(session: aiohttp.ClientSession, base: str, token: str) -> float:
    """kbit/s of an HTTP POST body to /api/speedtest, from request start to response.
    A 256 KiB probe first; 2 MiB if the probe took under half a second."""
    kbps = 0.0
    for size in SPEEDTEST_BYTES:
        body = os.urandom(size)  # incompressible
        started = time.perf_counter()
        async with session.post(
            f"{base}/api/speedtest", data=body, headers={"Authorization": f"Bearer {token}"}
        ) as response:
            response.raise_for_status()
            received = int((await response.json())["received"])
        elapsed = time.perf_counter() - started
        kbps = received * 8 / 1000 / elapsed
        if elapsed > 0.5:
            break
    return kbps


async def check_network(
    server_url: str | None, token: str | None, timeout_s: float = 10.0
) -> list[CheckResult]:
    if not server_url:
        return [
            CheckResult(
                DEVICE,
                "server configured",
                "WARN",
                "no [agent] server_url",
                "network not tested: set [agent] server_url and token in cart.toml",
            )
        ]
    parts = urlsplit(server_url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        return [
            CheckResult(
                DEVICE,
                "server configured",
                "FAIL",
                server_url,
                "server_url must look like ws://host:port/ws or wss://host/ws",
            )
        ]
    host = parts.hostname
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    out: list[CheckResult] = []
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=1), timeout_s)
    except (OSError, TimeoutError) as exc:
        return [
            CheckResult(
                DEVICE,
                "DNS",
                "FAIL",
                host,
                f"name does not resolve ({exc}): check the server name and DNS",
            )
        ]
    out.append(CheckResult(DEVICE, "DNS", "PASS", str(infos[0][4][0])))
    started = time.perf_counter()
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
        writer.close()
        await writer.wait_closed()
    except (OSError, TimeoutError) as exc:
        out.append(
            CheckResult(
                DEVICE,
                "TCP connect",
                "FAIL",
                f"{host}:{port}",
                f"server unreachable ({exc}): check the network and firewall",
            )
        )
        return out
    out.append(
        CheckResult(
            DEVICE, "TCP connect", "PASS", f"{(time.perf_counter() - started) * 1000:.0f} ms"
        )
    )
    if not token:
        out.append(
            CheckResult(
                DEVICE,
                "WebSocket auth",
                "FAIL",
                "no token",
                "set [agent] token in cart.toml (ask the administrator)",
            )
        )
        return out
    figures = LinkFigures()
    base = http_base(server_url)
    timeout = aiohttp.ClientTimeout(total=timeout_s * 3)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        out += await _websocket_checks(session, server_url, token, figures, timeout_s)
        if out[-1].result == "FAIL":
            return out
        out += await _turn_checks(session, base, token)
        try:
            figures.upload_kbps = await _upload(session, base, token)
            out.append(
                CheckResult(
                    DEVICE,
                    "upload throughput",
                    "PASS",
                    f"{figures.upload_kbps:.0f} kbit/s (HTTP POST)",
                )
            )
        except (aiohttp.ClientError, TimeoutError, KeyError, ValueError) as exc:
            out.append(
                CheckResult(
                    DEVICE,
                    "upload throughput",
                    "WARN",
                    str(exc)[:60],
                    "server has no /api/speedtest or the upload failed",
                )
            )
    out.append(verdict(figures))
    return out


async def _websocket_checks(
    session: aiohttp.ClientSession, url: str, token: str, figures: LinkFigures, timeout_s: float
) -> list[CheckResult]:
    try:
        async with session.ws_connect(
            url, timeout=aiohttp.ClientWSTimeout(ws_close=timeout_s)
        ) as ws:
            await ws.send_json({"v": 1, "type": "hello", "role": "cart", "token": token})
            async with asyncio.timeout(timeout_s):
                reply = await ws.receive_json()
            if reply.get("type") != "welcome":
                return [
                    CheckResult(
                        DEVICE,
                        "WebSocket auth",
                        "FAIL",
                        str(reply.get("code", reply.get("type"))),
                        "the server refused the cart token: ask the administrator "
                        "for a new token and set [agent] token",
                    )
                ]
            results = [CheckResult(DEVICE, "WebSocket auth", "PASS", "welcome")]
            rtts, lost = await _ping(ws)
    except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError, TypeError) as exc:
        return [
            CheckResult(
                DEVICE,
                "WebSocket auth",
                "FAIL",
                type(exc).__name__,
                f"WebSocket to {url} failed ({exc}): check server_url and proxy",
            )
        ]
    figures.loss_pct = 100 * lost / PINGS
    if rtts:
        figures.rtt_ms = statistics.median(rtts)
        figures.jitter_ms = (
            statistics.mean(abs(a - b) for a, b in itertools.pairwise(rtts))
            if len(rtts) > 1
            else 0.0
        )
    rtt_result: Result = (
        "PASS" if rtts and figures.rtt_ms is not None and figures.rtt_ms <= RTT_OK_MS else "WARN"
    )
    results.append(
        CheckResult(
            DEVICE,
            "RTT / jitter / loss",
            rtt_result,
            f"{figures.rtt_ms or 0:.0f} ms / {figures.jitter_ms or 0:.0f} ms"
            f" / {figures.loss_pct:.0f} %",
            "" if rtt_result == "PASS" else "slow or lossy link: video quality will drop",
        )
    )
    return results


async def _turn_checks(session: aiohttp.ClientSession, base: str, token: str) -> list[CheckResult]:
    try:
        async with session.get(
            f"{base}/api/turn", headers={"Authorization": f"Bearer {token}"}
        ) as response:
            response.raise_for_status()
            ice = await response.json()
        targets = _turn_targets(ice["iceServers"])
    except (aiohttp.ClientError, TimeoutError, KeyError, ValueError, TypeError) as exc:
        return [
            CheckResult(
                DEVICE,
                "TURN credentials",
                "FAIL",
                str(exc)[:60],
                "server did not issue TURN credentials: check its [turn] config",
            )
        ]
    if not targets:
        return [
            CheckResult(
                DEVICE,
                "TURN credentials",
                "WARN",
                "no TURN servers",
                "calls behind strict NAT will fail: configure TURN on the server",
            )
        ]
    out = [CheckResult(DEVICE, "TURN credentials", "PASS", f"{len(targets)} URL(s)")]
    for url, host, port, transport, username, credential in targets:
        check = f"TURN allocate {transport.upper()}"
        try:
            relayed = await _turn_allocate(host, port, transport, username, credential)
        except Exception as exc:  # aioice raises TransactionFailed/Timeout/OSError
            action = (
                "UDP blocked? open UDP 3478 and the relay range on the firewall"
                if transport == "udp"
                else "TCP/TLS to the TURN port blocked or refused"
            )
            out.append(CheckResult(DEVICE, check, "FAIL", f"{url}: {type(exc).__name__}", action))
        else:
            out.append(CheckResult(DEVICE, check, "PASS", relayed))
    return out
