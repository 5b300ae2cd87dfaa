"""SQLite persistence: carts, specialists, web sessions, consultation sessions, stills, audit.

All SQL runs on one dedicated thread (SQLite connections are not shared between threads),
so the event loop never blocks on disk.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from telecart.signalling.session_state import OPEN_STATES, SessionState

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS carts (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    clinic TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    revoked INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS specialists (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    specialties TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS web_sessions (
    token_hash TEXT PRIMARY KEY,
    specialist_id TEXT NOT NULL REFERENCES specialists(id),
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    cart_id TEXT NOT NULL REFERENCES carts(id),
    specialist_id TEXT REFERENCES specialists(id),
    specialty TEXT NOT NULL,
    priority TEXT NOT NULL,
    reason TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at REAL NOT NULL,
    accepted_at REAL,
    ended_at REAL,
    end_reason TEXT,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_state ON sessions(state);
CREATE TABLE IF NOT EXISTS session_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL REFERENCES sessions(id),
    state TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS stills (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(id),
    media_type TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    path TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    session_id TEXT,
    detail TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""


@dataclass(frozen=True)
class CartRecord:
    id: str
    name: str
    clinic: str
    revoked: bool


@dataclass(frozen=True)
class SpecialistRecord:
    id: str
    username: str
    display_name: str
    password_hash: str
    specialties: tuple[str, ...]
    disabled: bool


@dataclass(frozen=True)
class SessionRecord:
    id: str
    cart_id: str
    specialist_id: str | None
    specialty: str
    priority: str
    reason: str
    state: SessionState
    created_at: float
    accepted_at: float | None
    ended_at: float | None
    end_reason: str | None


@dataclass(frozen=True)
class StillRecord:
    id: str
    session_id: str
    media_type: str
    sha256: str
    size: int
    path: str
    created_at: float


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: float
    actor: str
    action: str
    session_id: str | None
    detail: dict[str, Any]


class Store:
    """The server's database. Open with `await Store.open(path)`, close with `close()`."""

    def __init__(self, conn: sqlite3.Connection, executor: ThreadPoolExecutor) -> None:
        self._conn = conn
        self._executor = executor

    @classmethod
    async def open(cls, path: Path) -> Store:
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="telecart-db")
        loop = asyncio.get_running_loop()
        conn = await loop.run_in_executor(executor, _connect, path)
        return cls(conn, executor)

    async def close(self) -> None:
        await self._run(self._conn.close)
        self._executor.shutdown(wait=True)

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(connection)` on the database thread: for stores of other features."""
        return await self._run(fn, self._conn)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    # --- carts -------------------------------------------------------------------------

    async def add_cart(self, name: str, clinic: str, token_hash: str) -> CartRecord:
        def work() -> CartRecord:
            cart_id = uuid.uuid4().hex[:12]
            with self._conn:
                self._conn.execute(
                    "INSERT INTO carts (id, name, clinic, token_hash, created_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (cart_id, name, clinic, token_hash, time.time()),
                )
            return CartRecord(cart_id, name, clinic, False)

        return await self._run(work)

    async def cart_by_token_hash(self, token_hash: str) -> CartRecord | None:
        row = await self._one(
            "SELECT id, name, clinic, revoked FROM carts WHERE token_hash = ?", token_hash
        )
        return CartRecord(row[0], row[1], row[2], bool(row[3])) if row else None

    async def cart(self, cart_id: str) -> CartRecord | None:
        row = await self._one("SELECT id, name, clinic, revoked FROM carts WHERE id = ?", cart_id)
        return CartRecord(row[0], row[1], row[2], bool(row[3])) if row else None

    async def revoke_cart(self, name: str) -> bool:
        return await self._change("UPDATE carts SET revoked = 1 WHERE name = ?", name) > 0

    async def list_carts(self) -> list[CartRecord]:
        rows = await self._all("SELECT id, name, clinic, revoked FROM carts ORDER BY name")
        return [CartRecord(r[0], r[1], r[2], bool(r[3])) for r in rows]

    # --- specialists ---------------------------------------------------------------------

    async def add_specialist(
        self, username: str, display_name: str, password_hash: str, specialties: tuple[str, ...]
    ) -> SpecialistRecord:
        def work() -> SpecialistRecord:
            sid = uuid.uuid4().hex[:12]
            with self._conn:
                self._conn.execute(
                    "INSERT INTO specialists (id, username, display_name, password_hash, "
                    "specialties, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        sid,
                        username,
                        display_name,
                        password_hash,
                        json.dumps(list(specialties)),
                        time.time(),
                    ),
                )
            return SpecialistRecord(sid, username, display_name, password_hash, specialties, False)

        return await self._run(work)

    async def specialist_by_username(self, username: str) -> SpecialistRecord | None:
        row = await self._one(_SPECIALIST_SELECT + " WHERE username = ?", username)
        return _specialist(row) if row else None

    async def specialist(self, specialist_id: str) -> SpecialistRecord | None:
        row = await self._one(_SPECIALIST_SELECT + " WHERE id = ?", specialist_id)
        return _specialist(row) if row else None

    async def list_specialists(self) -> list[SpecialistRecord]:
        rows = await self._all(_SPECIALIST_SELECT + " ORDER BY username")
        return [_specialist(r) for r in rows]

    async def set_password_hash(self, specialist_id: str, password_hash: str) -> None:
        await self._change(
            "UPDATE specialists SET password_hash = ? WHERE id = ?", password_hash, specialist_id
        )

    # --- web sessions (specialist logins) --------------------------------------------------

    async def add_web_session(self, token_hash: str, specialist_id: str, expires_at: float) -> None:
        await self._change(
            "INSERT INTO web_sessions (token_hash, specialist_id, expires_at) VALUES (?, ?, ?)",
            token_hash,
            specialist_id,
            expires_at,
        )

    async def web_session_specialist(self, token_hash: str, now: float) -> str | None:
        row = await self._one(
            "SELECT specialist_id FROM web_sessions WHERE token_hash = ? AND expires_at > ?",
            token_hash,
            now,
        )
        return str(row[0]) if row else None

    async def delete_web_session(self, token_hash: str) -> None:
        await self._change("DELETE FROM web_sessions WHERE token_hash = ?", token_hash)

    # --- consultation sessions -----------------------------------------------------------

    async def create_session(
        self, cart_id: str, specialty: str, priority: str, reason: str, now: float
    ) -> SessionRecord:
        """Insert a request and queue it at once (two recorded transitions)."""

        def work() -> SessionRecord:
            sid = uuid.uuid4().hex
            with self._conn:
                self._conn.execute(
                    "INSERT INTO sessions (id, cart_id, specialty, priority, reason, state, "
                    "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (sid, cart_id, specialty, priority, reason, "queued", now, now),
                )
                self._conn.executemany(
                    "INSERT INTO session_events (session_id, state, at) VALUES (?, ?, ?)",
                    [(sid, "requested", now), (sid, "queued", now)],
                )
            return SessionRecord(
                sid, cart_id, None, specialty, priority, reason, SessionState.QUEUED, now,
                None, None, None,
            )  # fmt: skip

        return await self._run(work)

    async def claim_session(self, session_id: str, specialist_id: str, now: float) -> bool:
        """Accept a queued session for `specialist_id`; False if someone else was first."""

        def work() -> bool:
            with self._conn:
                cur = self._conn.execute(
                    "UPDATE sessions SET specialist_id = ?, state = 'accepted', accepted_at = ?, "
                    "updated_at = ? WHERE id = ? AND state = 'queued'",
                    (specialist_id, now, now, session_id),
                )
                if cur.rowcount != 1:
                    return False
                self._conn.execute(
                    "INSERT INTO session_events (session_id, state, at) VALUES (?, 'accepted', ?)",
                    (session_id, now),
                )
            return True

        return await self._run(work)

    async def set_session_state(
        self,
        session_id: str,
        state: SessionState,
        now: float,
        end_reason: str | None = None,
    ) -> None:
        def work() -> None:
            with self._conn:
                if state is SessionState.ENDED:
                    self._conn.execute(
                        "UPDATE sessions SET state = ?, ended_at = ?, end_reason = ?, "
                        "updated_at = ? WHERE id = ?",
                        (state.value, now, end_reason, now, session_id),
                    )
                else:
                    self._conn.execute(
                        "UPDATE sessions SET state = ?, updated_at = ? WHERE id = ?",
                        (state.value, now, session_id),
                    )
                self._conn.execute(
                    "INSERT INTO session_events (session_id, state, at) VALUES (?, ?, ?)",
                    (session_id, state.value, now),
                )

        await self._run(work)

    async def session(self, session_id: str) -> SessionRecord | None:
        row = await self._one(_SESSION_SELECT + " WHERE id = ?", session_id)
        return _session(row) if row else None

    async def open_sessions(self) -> list[SessionRecord]:
        marks = ",".join("?" for _ in OPEN_STATES)
        rows = await self._all(
            _SESSION_SELECT + f" WHERE state IN ({marks}) ORDER BY created_at",
            *[s.value for s in OPEN_STATES],
        )
        return [_session(r) for r in rows]

    async def sessions_of_specialist(
        self, specialist_id: str, limit: int = 100
    ) -> list[SessionRecord]:
        rows = await self._all(
            _SESSION_SELECT + " WHERE specialist_id = ? ORDER BY created_at DESC LIMIT ?",
            specialist_id,
            limit,
        )
        return [_session(r) for r in rows]

    async def session_events(self, session_id: str) -> list[tuple[str, float]]:
        rows = await self._all(
            "SELECT state, at FROM session_events WHERE session_id = ? ORDER BY id", session_id
        )
        return [(str(r[0]), float(r[1])) for r in rows]

    # --- stills --------------------------------------------------------------------------

    async def add_still(self, still: StillRecord) -> None:
        await self._change(
            "INSERT INTO stills (id, session_id, media_type, sha256, size, path, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            still.id,
            still.session_id,
            still.media_type,
            still.sha256,
            still.size,
            still.path,
            still.created_at,
        )

    async def stills(self, session_id: str) -> list[StillRecord]:
        rows = await self._all(
            "SELECT id, session_id, media_type, sha256, size, path, created_at FROM stills "
            "WHERE session_id = ? ORDER BY created_at",
            session_id,
        )
        return [StillRecord(*r) for r in rows]

    async def still(self, still_id: str) -> StillRecord | None:
        row = await self._one(
            "SELECT id, session_id, media_type, sha256, size, path, created_at FROM stills "
            "WHERE id = ?",
            still_id,
        )
        return StillRecord(*row) if row else None

    # --- audit ---------------------------------------------------------------------------

    async def audit(
        self,
        actor: str,
        action: str,
        session_id: str | None = None,
        **detail: Any,
    ) -> None:
        """Append one audit entry. Callers pass no secrets: tokens, passwords, SDP stay out."""
        await self._change(
            "INSERT INTO audit (at, actor, action, session_id, detail) VALUES (?, ?, ?, ?, ?)",
            time.time(),
            actor,
            action,
            session_id,
            json.dumps(detail, sort_keys=True),
        )

    async def audit_entries(self, limit: int = 1000) -> list[AuditEntry]:
        rows = await self._all(
            "SELECT id, at, actor, action, session_id, detail FROM audit ORDER BY id DESC LIMIT ?",
            limit,
        )
        return [AuditEntry(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]

    # --- plumbing ------------------------------------------------------------------------

    async def _one(self, sql: str, *args: Any) -> tuple[Any, ...] | None:
        def work() -> tuple[Any, ...] | None:
            row: tuple[Any, ...] | None = self._conn.execute(sql, args).fetchone()
            return row

        return await self._run(work)

    async def _all(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        def work() -> list[tuple[Any, ...]]:
            return list(self._conn.execute(sql, args).fetchall())

        return await self._run(work)

    async def _change(self, sql: str, *args: Any) -> int:
        def work() -> int:
            with self._conn:
                return self._conn.execute(sql, args).rowcount

        return await self._run(work)


_SPECIALIST_SELECT = (
    "SELECT id, username, display_name, password_hash, specialties, disabled FROM specialists"
)
_SESSION_SELECT = (
    "SELECT id, cart_id, specialist_id, specialty, priority, reason, state, created_at, "
    "accepted_at, ended_at, end_reason FROM sessions"
)


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level="DEFERRED")
    conn.execute("PRAGMA journal_mode=WAL")
    # WAL + NORMAL: a crash of the process loses nothing; only a power cut can lose the last
    # commits (never corrupts). FULL fsyncs every commit and serialised setups at ~2 ms each.
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=5000")
    conn.executescript(_SCHEMA)
    return conn


def _specialist(row: tuple[Any, ...]) -> SpecialistRecord:
    return SpecialistRecord(row[0], row[1], row[2], row[3], tuple(json.loads(row[4])), bool(row[5]))


def _session(row: tuple[Any, ...]) -> SessionRecord:
    return SessionRecord(
        row[0], row[1], row[2], row[3], row[4], row[5], SessionState(row[6]), row[7], row[8],
        row[9], row[10],
    )  # fmt: skip
