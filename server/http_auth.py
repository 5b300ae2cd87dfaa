"""Who is asking: a specialist by session cookie, a cart by bearer token."""

from __future__ import annotations

import time

from aiohttp import web

from telecart.server.app_keys import STORE
from telecart.server.credentials import token_hash
from telecart.server.store import CartRecord, SpecialistRecord

COOKIE_NAME = "telecart_session"


def client_ip(request: web.Request) -> str:
    return request.remote or "unknown"


async def specialist_from_cookie(request: web.Request) -> SpecialistRecord | None:
    token = request.cookies.get(COOKIE_NAME)
    if not token:
        return None
    store = request.app[STORE]
    specialist_id = await store.web_session_specialist(token_hash(token), time.time())
    if specialist_id is None:
        return None
    specialist = await store.specialist(specialist_id)
    return specialist if specialist and not specialist.disabled else None


async def cart_from_bearer(request: web.Request) -> CartRecord | None:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return None
    cart = await request.app[STORE].cart_by_token_hash(token_hash(header[7:].strip()))
    return cart if cart and not cart.revoked else None


async def require_party_id(request: web.Request) -> str:
    """The caller's party id (`cart:<id>` or `specialist:<id>`), or 401."""
    cart = await cart_from_bearer(request)
    if cart is not None:
        return f"cart:{cart.id}"
    specialist = await specialist_from_cookie(request)
    if specialist is not None:
        return f"specialist:{specialist.id}"
    raise web.HTTPUnauthorized(text='{"error": "auth_required"}', content_type="application/json")
