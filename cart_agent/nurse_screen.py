"""The nurse's screen: a local web app on 127.0.0.1, opened in the cart's kiosk browser.

Serves `nurse_web/` (the page), the shared browser modules of `signalling/web/` at
`/static/common/`, and `NurseApi`. It listens on loopback only and refuses requests whose
`Host` or `Origin` is not this machine, so a web page elsewhere cannot reach it through
DNS rebinding or a cross-site form.
"""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path
from typing import Any

from aiohttp import web

from telecart import signalling
from telecart.cart_agent.agent import CartAgent
from telecart.cart_agent.nurse_api import MAX_ATTACHMENT_BYTES, NurseApi

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).with_name("nurse_web")
COMMON_WEB_DIR = Path(signalling.__file__).with_name("web")
LOCAL_NAMES = ("127.0.0.1", "localhost", "[::1]")
NURSE_API: web.AppKey[NurseApi] = web.AppKey("nurse_api", NurseApi)
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
        "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def is_loopback_bind(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _local_port(request: web.Request) -> int:
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    return int(sockname[1]) if sockname else -1


@web.middleware
async def local_guard(request: web.Request, handler: Any) -> web.StreamResponse:
    """Only this machine's page, addressed as this machine, may use the screen."""
    port = _local_port(request)
    hosts = {f"{name}:{port}" for name in LOCAL_NAMES}
    origins = {f"http://{name}:{port}" for name in LOCAL_NAMES}
    host = request.headers.get("Host", "")
    origin = request.headers.get("Origin")
    if host not in hosts:
        log.warning("nurse screen: refused a request for host %r", host[:100])
        return web.json_response(
            {"error": "forbidden_host", "message": "Open the nurse screen at 127.0.0.1."},
            status=403,
        )
    if origin is not None and origin not in origins:
        log.warning("nurse screen: refused a request from origin %r", origin[:100])
        return web.json_response(
            {"error": "forbidden_origin", "message": "Requests from other sites are refused."},
            status=403,
        )
    if request.method not in ("GET", "HEAD") and origin is None:
        return web.json_response(
            {"error": "origin_required", "message": "Changes are accepted from the page only."},
            status=403,
        )
    response: web.StreamResponse = await handler(request)
    if not response.prepared:  # a WebSocket has sent its headers already
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.path.startswith("/api/"):
            response.headers.setdefault("Cache-Control", "no-store")
    return response


def create_nurse_app(agent: CartAgent) -> web.Application:
    api = NurseApi(agent)
    app = web.Application(
        middlewares=[local_guard, api.errors], client_max_size=MAX_ATTACHMENT_BYTES + 65536
    )
    app[NURSE_API] = api
    app.add_routes(api.routes())

    async def index(request: web.Request) -> web.FileResponse:
        return web.FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.router.add_get("/", index)
    app.router.add_static("/static/nurse/", WEB_DIR)
    if COMMON_WEB_DIR.is_dir():
        app.router.add_static("/static/common/", COMMON_WEB_DIR)
    else:
        log.warning("nurse screen: shared browser modules not found at %s", COMMON_WEB_DIR)

    async def shutdown(app: web.Application) -> None:
        await app[NURSE_API].close_sockets()

    async def cleanup(app: web.Application) -> None:
        app[NURSE_API].close_observers()

    app.on_shutdown.append(shutdown)
    app.on_cleanup.append(cleanup)
    return app


class NurseScreen:
    """Runs the nurse screen's server beside the agent: `start()`, then `close()`."""

    def __init__(self, agent: CartAgent, host: str = "127.0.0.1", port: int = 8081) -> None:
        if not is_loopback_bind(host):
            raise ValueError(
                f"agent.nurse_host is {host!r}: the nurse screen listens on loopback only "
                "(127.0.0.1); open it in the cart's own browser"
            )
        self._agent = agent
        self._host = host
        self._runner: web.AppRunner | None = None
        self.port = port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    async def start(self) -> None:
        app = create_nurse_app(self._agent)
        self._runner = web.AppRunner(app, shutdown_timeout=2.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        log.info("nurse screen at %s", self.url)

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
