"""Short-lived TURN REST credentials for coturn's `use-auth-secret` mode (HMAC-SHA1)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass


@dataclass(frozen=True)
class TurnCredentials:
    username: str
    credential: str
    expires_at: int


def issue_turn_credentials(secret: str, party_id: str, now: float, ttl_s: int) -> TurnCredentials:
    """username = "<expiry unix time>:<party>", credential = base64(HMAC-SHA1(secret, username))."""
    expires_at = int(now) + ttl_s
    username = f"{expires_at}:{party_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return TurnCredentials(username, base64.b64encode(digest).decode("ascii"), expires_at)


def ice_servers(urls: tuple[str, ...], creds: TurnCredentials) -> list[dict[str, object]]:
    """RTCIceServer entries for a browser or aiortc; STUN urls carry no credentials."""
    stun = [u for u in urls if u.startswith("stun:")]
    turn = [u for u in urls if u.startswith(("turn:", "turns:"))]
    servers: list[dict[str, object]] = []
    if stun:
        servers.append({"urls": stun})
    if turn:
        servers.append({"urls": turn, "username": creds.username, "credential": creds.credential})
    return servers
