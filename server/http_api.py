"""HTTP endpoints: login/logout, TURN credentials, history, stills, health, metrics."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from pathlib import Path
from typing import Any

from aiohttp import web

from telecart.server.app_keys import CONFIG, LOGIN_LIMITER, METRICS, ROUTER, STORE
from telecart.server.credentials import new_token, token_hash, verify_password
from telecart.server.http_auth import (
    COOKIE_NAME,
    cart_from_bearer,
    client_ip,
    require_party_id,
    specialist_from_cookie,
)
from telecart.server.store import SessionRecord, StillRecord
from telecart.server.turn_credentials import ice_servers, issue_turn_credentials

routes = web.RouteTableDef()

_IMAGE_MAGIC = {b"\xff\xd8\xff": "image/jpeg", b"\x89PNG\r\n\x1a\n": "image/png"}


def _json_error(status: type[web.HTTPException], code: str, message: str) -> web.HTTPException:
    return status(
        text=web.json_response({"error": code, "message": message}).text,
        content_type="application/json",
    )


@routes.post("/api/login")
async def login(request: web.Request) -> web.Response:
    app = request.app
    try:
        body = await request.json()
        username = str(body["username"]).strip().lower()
        password = str(body["password"])
    except (ValueError, KeyError, TypeError):
        raise _json_error(
            web.HTTPBadRequest, "invalid_message", "Send JSON with username and password."
        ) from None
    limiter = app[LOGIN_LIMITER]
    keys = (f"user:{username}", f"ip:{client_ip(request)}")
    if any(limiter.blocked(k) for k in keys):
        app[METRICS].logins.labels("blocked").inc()
        await app[STORE].audit(f"ip:{client_ip(request)}", "login_blocked", username=username)
        retry = max(limiter.retry_after(k) for k in keys)
        raise web.HTTPTooManyRequests(
            text=web.json_response(
                {"error": "rate_limited", "message": "Too many attempts; try again later."}
            ).text,
            content_type="application/json",
            headers={"Retry-After": str(int(retry) + 1)},
        )
    specialist = await app[STORE].specialist_by_username(username)
    ok = await verify_password(specialist.password_hash if specialist else None, password)
    if not ok or specialist is None or specialist.disabled:
        for k in keys:
            limiter.record_failure(k)
        app[METRICS].logins.labels("failed").inc()
        await app[STORE].audit(f"ip:{client_ip(request)}", "login_failed", username=username)
        raise _json_error(web.HTTPUnauthorized, "auth_failed", "Wrong username or password.")
    config = app[CONFIG]
    token = new_token()
    await app[STORE].add_web_session(
        token_hash(token), specialist.id, time.time() + config.web_session_ttl_s
    )
    app[METRICS].logins.labels("ok").inc()
    await app[STORE].audit(f"specialist:{specialist.id}", "login", ip=client_ip(request))
    response = web.json_response(_specialist_json(specialist.display_name, specialist.specialties))
    response.set_cookie(
        COOKIE_NAME,
        token,
        max_age=config.web_session_ttl_s,
        httponly=True,
        samesite="Strict",
        secure=config.uses_tls,
        path="/",
    )
    return response


@routes.post("/api/logout")
async def logout(request: web.Request) -> web.Response:
    token = request.cookies.get(COOKIE_NAME)
    specialist = await specialist_from_cookie(request)
    if token:
        await request.app[STORE].delete_web_session(token_hash(token))
    if specialist is not None:
        await request.app[STORE].audit(f"specialist:{specialist.id}", "logout")
    response = web.json_response({"ok": True})
    response.del_cookie(COOKIE_NAME, path="/")
    return response


@routes.get("/api/me")
async def me(request: web.Request) -> web.Response:
    specialist = await specialist_from_cookie(request)
    if specialist is None:
        raise _json_error(web.HTTPUnauthorized, "auth_required", "Log in first.")
    return web.json_response(_specialist_json(specialist.display_name, specialist.specialties))


@routes.get("/api/turn")
async def turn(request: web.Request) -> web.Response:
    """ICE servers with TURN REST credentials that expire after `server.turn.ttl_s`."""
    party_id = await require_party_id(request)
    turn_config = request.app[CONFIG].turn
    if turn_config.secret is None or not turn_config.urls:
        return web.json_response({"iceServers": [], "ttl": 0})
    creds = issue_turn_credentials(turn_config.secret, party_id, time.time(), turn_config.ttl_s)
    return web.json_response(
        {"iceServers": ice_servers(turn_config.urls, creds), "ttl": turn_config.ttl_s}
    )


@routes.get("/api/history")
async def history(request: web.Request) -> web.Response:
    """The logged-in specialist's own consultations, newest first."""
    specialist = await specialist_from_cookie(request)
    if specialist is None:
        raise _json_error(web.HTTPUnauthorized, "auth_required", "Log in first.")
    store = request.app[STORE]
    records = await store.sessions_of_specialist(specialist.id)
    items = []
    for record in records:
        stills = await store.stills(record.id)
        items.append(_session_json(record) | {"stills": [_still_json(s) for s in stills]})
    return web.json_response({"sessions": items})


@routes.post("/api/sessions/{session_id}/stills")
async def upload_still(request: web.Request) -> web.Response:
    """A cart stores a still of its own session; the body is the JPEG or PNG itself."""
    cart = await cart_from_bearer(request)
    if cart is None:
        raise _json_error(web.HTTPUnauthorized, "auth_required", "Cart token required.")
    store = request.app[STORE]
    record = await store.session(request.match_info["session_id"])
    if record is None or record.cart_id != cart.id:
        raise _json_error(web.HTTPForbidden, "not_in_session", "Not this cart's consultation.")
    limit = request.app[CONFIG].max_attachment_bytes
    if request.content_length is not None and request.content_length > limit:
        raise _json_error(web.HTTPRequestEntityTooLarge, "too_large", f"Stills up to {limit} B.")
    body = await _read_limited(request, limit)
    media_type = next((t for magic, t in _IMAGE_MAGIC.items() if body.startswith(magic)), None)
    if media_type is None:
        raise _json_error(
            web.HTTPUnsupportedMediaType, "bad_image", "Only JPEG and PNG stills are stored."
        )
    digest = hashlib.sha256(body).hexdigest()
    claimed = request.headers.get("X-Content-SHA256")
    if claimed is not None and claimed.lower() != digest:
        raise _json_error(web.HTTPBadRequest, "checksum_mismatch", "The still arrived damaged.")
    # A cart retries an upload whose answer it lost: the same bytes are stored once.
    stored = next((s for s in await store.stills(record.id) if s.sha256 == digest), None)
    if stored is not None:
        return web.json_response(_still_json(stored), status=200)
    still_id = uuid.uuid4().hex
    folder = request.app[CONFIG].data_dir / "stills" / record.id
    path = folder / f"{still_id}{'.jpg' if media_type == 'image/jpeg' else '.png'}"
    await _write_file(path, body)
    still = StillRecord(still_id, record.id, media_type, digest, len(body), str(path), time.time())
    await store.add_still(still)
    await store.audit(f"cart:{cart.id}", "still_stored", record.id, still=still_id, size=len(body))
    return web.json_response(_still_json(still), status=201)


@routes.get("/api/stills/{still_id}")
async def get_still(request: web.Request) -> web.FileResponse:
    party_id = await require_party_id(request)
    store = request.app[STORE]
    still = await store.still(request.match_info["still_id"])
    record = await store.session(still.session_id) if still else None
    if still is None or record is None or party_id not in _participants(record):
        await store.audit(party_id, "still_read_refused", still=request.match_info["still_id"])
        raise _json_error(web.HTTPForbidden, "forbidden", "Not your consultation.")
    await store.audit(party_id, "still_read", record.id, still=still.id)
    return web.FileResponse(Path(still.path), headers={"Content-Type": still.media_type})


SPEEDTEST_LIMIT = 4 * 1024 * 1024


@routes.post("/api/speedtest")
async def speedtest(request: web.Request) -> web.Response:
    """Upload goodput probe for `telecart devtest`: reads and discards up to 4 MiB."""
    if await cart_from_bearer(request) is None:
        raise _json_error(web.HTTPUnauthorized, "auth_required", "Cart token required.")
    started = time.monotonic()
    received = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        received += len(chunk)
        if received > SPEEDTEST_LIMIT:
            raise _json_error(
                web.HTTPRequestEntityTooLarge, "too_large", "Speed tests send at most 4 MiB."
            )
    elapsed_ms = (time.monotonic() - started) * 1000
    return web.json_response({"received": received, "elapsed_ms": round(elapsed_ms, 1)})


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    await request.app[STORE].list_carts()
    return web.json_response({"status": "ok", "specialties": request.app[ROUTER].specialties})


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS].render()
    return web.Response(body=body, content_type="text/plain", charset="utf-8")


def _participants(record: SessionRecord) -> set[str]:
    parties = {f"cart:{record.cart_id}"}
    if record.specialist_id:
        parties.add(f"specialist:{record.specialist_id}")
    return parties


def _specialist_json(name: str, specialties: tuple[str, ...]) -> dict[str, Any]:
    return {"name": name, "specialties": list(specialties)}


def _session_json(record: SessionRecord) -> dict[str, Any]:
    return {
        "session_id": record.id,
        "state": record.state.value,
        "specialty": record.specialty,
        "priority": record.priority,
        "reason": record.reason,
        "created_at": record.created_at,
        "accepted_at": record.accepted_at,
        "ended_at": record.ended_at,
        "end_reason": record.end_reason,
    }


def _still_json(still: StillRecord) -> dict[str, Any]:
    return {
        "still_id": still.id,
        "session_id": still.session_id,
        "media_type": still.media_type,
        "sha256": still.sha256,
        "size": still.size,
        "url": f"/api/stills/{still.id}",
        "created_at": still.created_at,
    }


async def _read_limited(request: web.Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise _json_error(
                web.HTTPRequestEntityTooLarge, "too_large", f"Stills up to {limit} B."
            )
        chunks.append(chunk)
    return b"".join(chunks)


async def _write_file(path: Path, data: bytes) -> None:
    def work() -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        tmp.write_bytes(data)
        tmp.replace(path)

    await asyncio.to_thread(work)
