"""Passwords (Argon2id) and bearer tokens (random, stored as SHA-256) for carts and logins."""

from __future__ import annotations

import asyncio
import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER = PasswordHasher()
# Verified against when the username is unknown, so both paths cost the same time.
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    """Argon2 check on a worker thread (it takes tens of milliseconds by design)."""

    def work() -> bool:
        try:
            return _HASHER.verify(password_hash or _DUMMY_HASH, password) and (
                password_hash is not None
            )
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(work)


def new_token() -> str:
    """A 256-bit random token, shown once to its owner and never stored in clear."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
