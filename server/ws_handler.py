"""The `/ws` endpoint: authenticate a cart or specialist, then pump messages to the router."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from aiohttp import WSMsgType, web

from telecart.server.app_keys import BROKER, CONFIG, LOGIN_LIMITER, METRICS, ROUTER, SOCKETS, STORE
from telecart.server.broker import party_topic, specialty_topic
from telecart.server.consultations import Party
from telecart.server.credentials import token_hash
from telecart.server.http_auth import client_ip, specialist_from_cookie
from telecart.server.rate_limit import TokenBucket
from telecart.signalling.errors import ErrorCode, ProtocolError
from telecart.signalling.messages import (
    MAX_MESSAGE_BYTES,
    Error,
    Hello,
    Message,
    Welcome,
    encode_message,
    parse_message,
)

log = logging.getLogger(__name__)

CLOSE_AUTH_FAILED = 4401
CLOSE_POLICY = 1008
HELLO_TIMEOUT_S = 10.0
OUTBOX_LIMIT = 512
# Frames above this are refused by aiohttp itself; between MAX_MESSAGE_BYTES and this we
# answer with an error and keep the connection.
FRAME_LIMIT = 1024 * 1024
# Past this many refused messages in a row the sender is treated as hostile.
FLOOD_CLOSE_AFTER = 1000


class Outbox:
    """Per-connection send queue, so one slow client never stalls a publisher."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self._ws = ws
        self._queue: asyncio.Queue[str] = asyncio.Queue(OUTBOX_LIMIT)
        self._task = asyncio.create_task(self._pump())

    async def deliver(self, message: Message) -> None:
        try:
            self._queue.put_nowait(encode_message(message))
        except asyncio.QueueFull:
            log.warning("client too slow, closing its connection")
            await self._ws.close(code=CLOSE_POLICY, message=b"too slow")

    async def _pump(self) -> None:
        while True:
            text = await self._queue.get()
            try:
                await self._ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def websocket_handler(request: web.Request) -> web.WebSocketResponse:
    app = request.app
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=FRAME_LIMIT)
    origin = request.headers.get("Origin")
    if origin is not None and not _same_origin(origin, request):
        raise web.HTTPForbidden(text="Cross-site WebSocket refused.")
    await ws.prepare(request)
    app[SOCKETS].add(ws)
    outbox = Outbox(ws)
    unsubscribes: list[Callable[[], None]] = []
    party: Party | None = None
    try:
        party = await _authenticate(request, ws)
        if party is None:
            return ws
        unsubscribes = await _join(request, party, outbox)
        await _serve(request, ws, party, outbox)
    finally:
        for unsubscribe in unsubscribes:
            unsubscribe()
        if party is not None:
            metrics = app[METRICS]
            online = metrics.carts_online if party.role == "cart" else metrics.specialists_online
            online.dec()
            log.info("%s disconnected", party.id)
        await outbox.close()
        app[SOCKETS].discard(ws)
    return ws


async def _authenticate(request: web.Request, ws: web.WebSocketResponse) -> Party | None:
    app = request.app
    try:
        first = await ws.receive(timeout=HELLO_TIMEOUT_S)
    except TimeoutError:
        await _refuse(ws, ErrorCode.AUTH_REQUIRED, "Send hello within 10 seconds.")
        return None
    if first.type != WSMsgType.TEXT:
        return None
    try:
        hello = parse_message(first.data)
    except ProtocolError as exc:
        await _refuse(ws, exc.code, exc.message)
        return None
    if not isinstance(hello, Hello):
        await _refuse(ws, ErrorCode.AUTH_REQUIRED, "The first message must be hello.")
        return None
    store = app[STORE]
    ip = client_ip(request)
    limiter = app[LOGIN_LIMITER]
    if hello.role == "cart":
        key = f"cart-ip:{ip}"
        if limiter.blocked(key):
            await _refuse(ws, ErrorCode.RATE_LIMITED, "Too many failed attempts; wait.")
            return None
        cart = await store.cart_by_token_hash(token_hash(hello.token or ""))
        if cart is None or cart.revoked:
            limiter.record_failure(key)
            await store.audit(f"ip:{ip}", "cart_auth_failed", revoked=cart is not None)
            await _refuse(
                ws,
                ErrorCode.AUTH_FAILED,
                "This cart's token was not accepted: ask the administrator for a new one.",
            )
            return None
        party = Party(role="cart", record_id=cart.id, name=cart.name, clinic=cart.clinic)
        app[METRICS].carts_online.inc()
    else:
        specialist = await specialist_from_cookie(request)
        if specialist is None:
            await _refuse(ws, ErrorCode.AUTH_REQUIRED, "Log in first.")
            return None
        party = Party(
            role="specialist",
            record_id=specialist.id,
            name=specialist.display_name,
            specialties=tuple(s for s in specialist.specialties if s in app[CONFIG].specialties),
        )
        app[METRICS].specialists_online.inc()
    await store.audit(party.id, "connected", ip=ip)
    log.info("%s connected", party.id)
    return party


async def _join(request: web.Request, party: Party, outbox: Outbox) -> list[Callable[[], None]]:
    app = request.app
    broker = app[BROKER]
    router = app[ROUTER]
    unsubscribes = [broker.subscribe(party_topic(party.id), outbox.deliver)]
    await outbox.deliver(
        Welcome(
            party_id=party.id,
            role=party.role,
            name=party.name,
            specialties=list(party.specialties or router.specialties),
            session=await router.open_session_of(party),
        )
    )
    for specialty in party.specialties:
        unsubscribes.append(broker.subscribe(specialty_topic(specialty), outbox.deliver))
        await outbox.deliver(await router.queue_snapshot(specialty))
    return unsubscribes


async def _serve(
    request: web.Request, ws: web.WebSocketResponse, party: Party, outbox: Outbox
) -> None:
    app = request.app
    config = app[CONFIG]
    bucket = TokenBucket(config.ws_messages_per_s, config.ws_burst)
    refused_in_row = 0
    last_rate_error = 0.0
    async for frame in ws:
        if frame.type != WSMsgType.TEXT:
            await _error(request, outbox, ErrorCode.INVALID_MESSAGE, "Only text frames.", None)
            continue
        if not bucket.allow():
            refused_in_row += 1
            if refused_in_row > FLOOD_CLOSE_AFTER:
                await ws.close(code=CLOSE_POLICY, message=b"flood")
                break
            now = time.monotonic()
            if now - last_rate_error > 1.0:
                last_rate_error = now
                await _error(
                    request, outbox, ErrorCode.RATE_LIMITED, "Too many messages; slow down.", None
                )
            continue
        refused_in_row = 0
        if len(frame.data) > MAX_MESSAGE_BYTES:
            await _error(
                request,
                outbox,
                ErrorCode.MESSAGE_TOO_LARGE,
                f"Messages are limited to {MAX_MESSAGE_BYTES} bytes.",
                None,
            )
            continue
        message: Message | None = None
        try:
            message = parse_message(frame.data)
            for reply in await app[ROUTER].handle(party, message):
                await outbox.deliver(reply)
        except ProtocolError as exc:
            await _error(request, outbox, exc.code, exc.message, message)
        except Exception:
            log.exception("failed to handle %s from %s", getattr(message, "TYPE", "?"), party.id)
            await _error(request, outbox, ErrorCode.INTERNAL, "Server error; try again.", message)


async def _error(
    request: web.Request,
    outbox: Outbox,
    code: ErrorCode,
    text: str,
    about: Message | None,
) -> None:
    request.app[METRICS].errors.labels(code.value).inc()
    await outbox.deliver(Error(code=code, message=text, ref_type=about.TYPE if about else None))


async def _refuse(ws: web.WebSocketResponse, code: ErrorCode, text: str) -> None:
    """Say why, then close: the refused client gets nothing else."""
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.send_str(encode_message(Error(code=code, message=text, ref_type="hello")))
    await ws.close(code=CLOSE_AUTH_FAILED, message=code.value.encode())


def _same_origin(origin: str, request: web.Request) -> bool:
    host = request.headers.get("Host", "")
    return origin.split("://", 1)[-1] == host
