"""Build and run the aiohttp application."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import WSCloseCode, web
from aiohttp.typedefs import Handler

import telecart.signalling
from telecart.config import ConfigError, ServerConfig
from telecart.server.app_keys import (
    BROKER,
    CONFIG,
    LOGIN_LIMITER,
    METRICS,
    ROUTER,
    SOCKETS,
    STORE,
    OpenSockets,
)
from telecart.server.appointments import AppointmentBook
from telecart.server.broker import Broker, LocalBroker
from telecart.server.consultations import ConsultationRouter
from telecart.server.http_api import routes
from telecart.server.journey_api import APPOINTMENT_BOOK
from telecart.server.journey_api import routes as journey_routes
from telecart.server.journey_store import ensure_schema
from telecart.server.metrics import ServerMetrics
from telecart.server.rate_limit import AttemptLimiter
from telecart.server.store import Store
from telecart.server.ws_handler import websocket_handler
from telecart.service_notify import ServiceNotifier

log = logging.getLogger(__name__)

WEB_ROOT = Path(__file__).parent / "web"
# Browser modules shared with the nurse screen (protocol client, translations).
COMMON_WEB_ROOT = Path(telecart.signalling.__file__).parent / "web"


def create_app(config: ServerConfig, broker: Broker | None = None) -> web.Application:
    """The whole server; `broker` is the seam for a multi-node backplane."""
    if config.turn.urls and not config.turn.secret:
        raise ConfigError(
            "server.turn.urls is set but server.turn.secret is not: set the same secret as "
            "coturn's static-auth-secret."
        )
    app = web.Application(client_max_size=config.max_attachment_bytes + 1024)
    app[CONFIG] = config
    app[BROKER] = broker or LocalBroker()
    app[METRICS] = ServerMetrics()
    app[LOGIN_LIMITER] = AttemptLimiter(config.login_attempts, config.login_window_s)
    app[SOCKETS] = OpenSockets()
    app.cleanup_ctx.append(_store_ctx)
    app.cleanup_ctx.append(_request_expiry_ctx)
    app.on_shutdown.append(_close_sockets)
    app.router.add_get("/ws", websocket_handler)
    app.router.add_routes(routes)
    app.router.add_routes(journey_routes)
    app.router.add_get("/", _index)
    app.router.add_static("/static/common/", COMMON_WEB_ROOT, append_version=True)
    app.router.add_static("/static/", WEB_ROOT, append_version=True)
    app.middlewares.append(_security_headers)
    return app


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    store = await Store.open(config.database_path)
    app[STORE] = store
    await ensure_schema(store)
    app[APPOINTMENT_BOOK] = AppointmentBook(store)
    router = ConsultationRouter(
        store, app[BROKER], app[METRICS], config.specialties, bookings=app[APPOINTMENT_BOOK]
    )
    await router.load()
    app[ROUTER] = router
    yield
    await store.close()


async def _request_expiry_ctx(app: web.Application) -> AsyncIterator[None]:
    """Ends requests that waited longer than `server.request_timeout_s` for a specialist,
    and sessions reconnecting longer than `server.reconnect_timeout_s`."""
    config = app[CONFIG]
    period_s = min(5.0, config.request_timeout_s / 4, config.reconnect_timeout_s / 4)

    async def sweep() -> None:
        while True:
            await asyncio.sleep(period_s)
            try:
                await app[ROUTER].expire_requests(config.request_timeout_s)
                await app[ROUTER].expire_reconnecting(config.reconnect_timeout_s)
            except Exception:
                log.exception("expiring requests failed; will retry")

    task = asyncio.create_task(sweep())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _close_sockets(app: web.Application) -> None:
    """Tell every client we are going away (code 1001), so they reconnect after a restart."""
    sockets = app[SOCKETS]
    for ws in list(sockets):
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server restarting")


async def _index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(WEB_ROOT / "index.html")


@web.middleware
async def _security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response: web.StreamResponse = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Frame-Options", "DENY")
    return response


def ssl_context(config: ServerConfig) -> ssl.SSLContext | None:
    if config.tls_cert is None or config.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(config.tls_cert, config.tls_key)
    return context


def _calm_garbage_collector() -> None:
    """Keep full collections from stalling the loop when thousands of sockets are open.

    Objects alive after start-up are frozen out of collection, and the young generation is
    collected less often: with 10,000 connections a full pass otherwise stops relaying for
    0.6-0.8 s (bench/signalling_load.py).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


def run_server(config: ServerConfig) -> None:
    """Serve until SIGINT/SIGTERM, then close every WebSocket and the database."""
    asyncio.run(serve(config))


async def serve(config: ServerConfig, stop: asyncio.Event | None = None) -> None:
    """Serve until `stop` is set or SIGINT/SIGTERM arrives; tells systemd when ready."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    notifier = ServiceNotifier()
    runner = web.AppRunner(create_app(config), access_log=None, shutdown_timeout=5.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, config.host, config.port, ssl_context=ssl_context(config))
        await site.start()
        scheme = "https" if config.uses_tls else "http"
        where = f"{scheme}://{config.host}:{config.port}"
        log.info("telecart server on %s, database %s", where, config.database_path)
        _calm_garbage_collector()
        notifier.ready(f"serving on {where}")
        await stop.wait()
        log.info("shutting down: closing connections")
        await notifier.stopping()
    finally:
        await runner.cleanup()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
