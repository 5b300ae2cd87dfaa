"""Consultation routing: the queue per specialty, race-safe accept, relay within a session.

Every rule of who may do what to which session lives here, independent of the transport:
the WebSocket handler hands in `(party, message)` and sends back what `handle` returns;
everything addressed to someone else goes through the `Broker`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from typing import Protocol

from telecart.server.broker import Broker, party_topic, specialty_topic
from telecart.server.metrics import ServerMetrics
from telecart.server.store import SessionRecord, Store
from telecart.signalling.errors import ErrorCode, ProtocolError
from telecart.signalling.messages import (
    Accept,
    Answer,
    Cancel,
    Chat,
    Hangup,
    IceCandidate,
    MediaState,
    Message,
    Offer,
    Ping,
    Pong,
    Quality,
    QueueEntry,
    QueueUpdate,
    RequestConsultation,
    Role,
    SessionInfo,
    SessionUpdate,
)
from telecart.signalling.session_state import (
    PAIRED_STATES,
    EndReason,
    SessionState,
    check_transition,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Party:
    """An authenticated cart or specialist on one or more connections."""

    role: Role
    record_id: str
    name: str
    clinic: str = ""
    specialties: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return f"{self.role}:{self.record_id}"


SYSTEM_ACTOR = "system"
"""Audit actor for what the server does by itself (timeouts)."""


class BookedStart(Protocol):
    """Opens a booked consultation (server/appointments.py); raises `ProtocolError` if not due."""

    async def start(
        self, appointment_id: str, cart_id: str, clinic: str, busy: Collection[str]
    ) -> SessionRecord: ...


class ConsultationRouter:
    """Owns open sessions (cached from the store, written through) and applies the rules."""

    def __init__(
        self,
        store: Store,
        broker: Broker,
        metrics: ServerMetrics,
        specialties: tuple[str, ...],
        clock: Callable[[], float] = time.time,
        bookings: BookedStart | None = None,
    ) -> None:
        self._store = store
        self._bookings = bookings
        self._broker = broker
        self._metrics = metrics
        self._specialties = specialties
        self._clock = clock
        self._sessions: dict[str, SessionRecord] = {}
        self._names: dict[str, tuple[str, str]] = {}
        self._reconnecting_since: dict[str, float] = {}
        self._lock = asyncio.Lock()

    async def load(self) -> None:
        """Restore open sessions after a restart."""
        for record in await self._store.open_sessions():
            self._sessions[record.id] = record
            if record.state is SessionState.RECONNECTING:
                self._reconnecting_since[record.id] = self._clock()
        self._update_gauges()
        log.info("restored %d open sessions", len(self._sessions))

    @property
    def specialties(self) -> tuple[str, ...]:
        return self._specialties

    async def open_session_of(self, party: Party) -> SessionInfo | None:
        for record in self._sessions.values():
            if party.role == "cart" and record.cart_id == party.record_id:
                return await self._info(record)
            if party.role == "specialist" and record.specialist_id == party.record_id:
                return await self._info(record)
        return None

    async def expire_requests(self, max_wait_s: float) -> int:
        """End requests nobody accepted within `max_wait_s`; the cart is told why."""
        now = self._clock()
        expired = [
            r
            for r in self._sessions.values()
            if r.state is SessionState.QUEUED and now - r.created_at > max_wait_s
        ]
        async with self._lock:
            for record in expired:
                if self._sessions.get(record.id) == record:
                    await self._end(record, EndReason.TIMEOUT, SYSTEM_ACTOR)
        return len(expired)

    async def expire_reconnecting(self, max_wait_s: float) -> int:
        """End sessions whose media has been lost for longer than `max_wait_s` (a cart that
        never came back: power cut, broken agent); both sides are told why."""
        now = self._clock()
        expired = [
            r
            for r in self._sessions.values()
            if r.state is SessionState.RECONNECTING
            and now - self._reconnecting_since.get(r.id, now) > max_wait_s
        ]
        async with self._lock:
            for record in expired:
                if self._sessions.get(record.id) == record:
                    await self._end(record, EndReason.LINK_LOST, SYSTEM_ACTOR)
        return len(expired)

    async def queue_snapshot(self, specialty: str) -> QueueUpdate:
        now = self._clock()
        waiting = sorted(
            (
                r
                for r in self._sessions.values()
                if r.state is SessionState.QUEUED and r.specialty == specialty
            ),
            key=lambda r: (r.priority != "urgent", r.created_at),
        )
        entries = []
        for position, record in enumerate(waiting, start=1):
            cart_name, clinic = await self._cart_names(record.cart_id)
            entries.append(
                QueueEntry(
                    session_id=record.id,
                    cart_name=cart_name,
                    clinic=clinic,
                    specialty=record.specialty,
                    priority="urgent" if record.priority == "urgent" else "routine",
                    reason=record.reason,
                    position=position,
                    waiting_s=round(now - record.created_at, 1),
                )
            )
        return QueueUpdate(specialty=specialty, entries=entries)

    async def handle(self, party: Party, message: Message) -> list[Message]:
        """Apply one message from `party`; returns the replies for the sender."""
        if isinstance(message, Ping):
            return [Pong(id=message.id)]
        async with self._lock:
            match message:
                case RequestConsultation():
                    return await self._request(party, message)
                case Cancel():
                    return await self._cancel(party, message)
                case Accept():
                    return await self._accept(party, message)
                case Hangup():
                    record = self._own(party, message.session_id)
                    await self._end(record, _hangup_reason(party, message), party.id)
                    return []
                case MediaState():
                    return await self._media_state(party, message)
                case Offer() | Answer() | IceCandidate() | Chat() | Quality():
                    return await self._relay(party, message)
        raise ProtocolError(
            ErrorCode.INVALID_MESSAGE, f"'{message.TYPE}' is not something a client sends."
        )

    # --- rules ---------------------------------------------------------------------------

    async def _request(self, party: Party, msg: RequestConsultation) -> list[Message]:
        self._require_role(party, "cart", msg)
        if msg.appointment_id is not None:
            return await self._request_booked(party, msg.appointment_id)
        if msg.specialty not in self._specialties:
            raise ProtocolError(
                ErrorCode.UNKNOWN_SPECIALTY,
                f"'{msg.specialty}' is not offered here; choose one of: "
                + ", ".join(self._specialties),
            )
        if any(r.cart_id == party.record_id for r in self._sessions.values()):
            raise ProtocolError(
                ErrorCode.SESSION_OPEN,
                "This cart already has an open consultation; end it before requesting another.",
            )
        record = await self._store.create_session(
            party.record_id, msg.specialty, msg.priority, msg.reason, self._clock()
        )
        self._sessions[record.id] = record
        await self._store.audit(
            party.id, "session_requested", record.id, specialty=msg.specialty, priority=msg.priority
        )
        await self._publish_queue(record.specialty)
        self._update_gauges()
        return [SessionUpdate(session=await self._info(record))]

    async def _request_booked(self, party: Party, appointment_id: str) -> list[Message]:
        """At the booked time: straight to the booked specialist, no queue."""
        if self._bookings is None:
            raise ProtocolError(ErrorCode.UNKNOWN_APPOINTMENT, "This server takes no bookings.")
        if any(r.cart_id == party.record_id for r in self._sessions.values()):
            raise ProtocolError(
                ErrorCode.SESSION_OPEN,
                "This cart already has an open consultation; end it before starting another.",
            )
        busy = {r.specialist_id for r in self._sessions.values() if r.specialist_id}
        record = await self._bookings.start(appointment_id, party.record_id, party.clinic, busy)
        self._sessions[record.id] = record
        await self._store.audit(
            party.id, "session_started_booked", record.id, appointment=appointment_id
        )
        await self._notify_both(record)
        self._update_gauges()
        return []

    async def _cancel(self, party: Party, msg: Cancel) -> list[Message]:
        self._require_role(party, "cart", msg)
        record = self._own(party, msg.session_id)
        if record.state is not SessionState.QUEUED:
            raise ProtocolError(
                ErrorCode.INVALID_STATE,
                "Only a request nobody has accepted can be cancelled; hang up instead.",
            )
        await self._end(record, EndReason.CANCELLED, party.id)
        return []

    async def _accept(self, party: Party, msg: Accept) -> list[Message]:
        self._require_role(party, "specialist", msg)
        record = self._sessions.get(msg.session_id)
        if record is None:
            stored = await self._store.session(msg.session_id)
            if stored is not None and stored.state is not SessionState.QUEUED:
                raise ProtocolError(ErrorCode.ALREADY_TAKEN, "This request is no longer waiting.")
            raise ProtocolError(ErrorCode.UNKNOWN_SESSION, "No such consultation request.")
        if record.specialty not in party.specialties:
            raise ProtocolError(
                ErrorCode.FORBIDDEN, "This request is for a specialty you do not cover."
            )
        if record.state is not SessionState.QUEUED:
            raise ProtocolError(
                ErrorCode.ALREADY_TAKEN, "Another specialist has already accepted this request."
            )
        if any(r.specialist_id == party.record_id for r in self._sessions.values()):
            raise ProtocolError(
                ErrorCode.SESSION_OPEN, "Finish your current consultation before accepting another."
            )
        now = self._clock()
        if not await self._store.claim_session(record.id, party.record_id, now):
            raise ProtocolError(
                ErrorCode.ALREADY_TAKEN, "Another specialist has already accepted this request."
            )
        record = replace(
            record, state=SessionState.ACCEPTED, specialist_id=party.record_id, accepted_at=now
        )
        self._sessions[record.id] = record
        self._names[party.id] = (party.name, "")
        await self._store.audit(party.id, "session_accepted", record.id, cart=record.cart_id)
        await self._notify_both(record)
        await self._publish_queue(record.specialty)
        return []

    async def _media_state(self, party: Party, msg: MediaState) -> list[Message]:
        record = self._own(party, msg.session_id)
        target = {
            "connecting": SessionState.CONNECTING,
            "connected": SessionState.LIVE,
            "disconnected": SessionState.RECONNECTING,
            "failed": SessionState.RECONNECTING,
        }[msg.state]
        if record.state is target or record.state not in PAIRED_STATES:
            return []
        await self._move(record, target, party.id)
        return []

    async def _relay(
        self, party: Party, msg: Offer | Answer | IceCandidate | Chat | Quality
    ) -> list[Message]:
        record = self._own(party, msg.session_id)
        if record.state not in PAIRED_STATES:
            raise ProtocolError(
                ErrorCode.INVALID_STATE, "The consultation is not connected to a specialist yet."
            )
        outgoing: Message = msg
        if isinstance(msg, Chat):
            outgoing = replace(msg, sender=party.name, sent_at=self._clock())
        elif isinstance(msg, Quality):
            self._require_role(party, "cart", msg)
            if not 0 <= msg.score <= 5:
                raise ProtocolError(ErrorCode.INVALID_MESSAGE, "quality.score must be 0 to 5.")
            self._metrics.session_quality.labels(record.id).set(msg.score)
        elif isinstance(msg, Offer) and record.state is not SessionState.CONNECTING:
            record = await self._move(record, SessionState.CONNECTING, party.id)
        peer = self._peer_topic(party, record)
        delivered = await self._broker.publish(peer, outgoing)
        self._metrics.messages_relayed.labels(msg.TYPE).inc()
        replies: list[Message] = []
        if isinstance(msg, Chat):
            replies.append(outgoing)
        if delivered == 0 and not isinstance(msg, Quality | IceCandidate):
            raise ProtocolError(
                ErrorCode.PEER_OFFLINE,
                "The other side is not connected right now; it will be told the session "
                "state when it reconnects.",
            )
        return replies

    # --- helpers -------------------------------------------------------------------------

    def _own(self, party: Party, session_id: str) -> SessionRecord:
        record = self._sessions.get(session_id)
        if record is None or not self._participates(party, record):
            raise ProtocolError(
                ErrorCode.NOT_IN_SESSION, "You are not a participant of that consultation."
            )
        return record

    @staticmethod
    def _participates(party: Party, record: SessionRecord) -> bool:
        if party.role == "cart":
            return record.cart_id == party.record_id
        return record.specialist_id == party.record_id

    @staticmethod
    def _require_role(party: Party, role: Role, msg: Message) -> None:
        if party.role != role:
            raise ProtocolError(ErrorCode.FORBIDDEN, f"Only a {role} may send '{msg.TYPE}'.")

    @staticmethod
    def _peer_topic(party: Party, record: SessionRecord) -> str:
        if party.role == "cart":
            return party_topic(f"specialist:{record.specialist_id}")
        return party_topic(f"cart:{record.cart_id}")

    async def _move(self, record: SessionRecord, target: SessionState, actor: str) -> SessionRecord:
        check_transition(record.state, target)
        await self._store.set_session_state(record.id, target, self._clock())
        record = replace(record, state=target)
        self._sessions[record.id] = record
        if target is SessionState.RECONNECTING:
            self._reconnecting_since.setdefault(record.id, self._clock())
        else:
            self._reconnecting_since.pop(record.id, None)
        await self._store.audit(actor, "session_state", record.id, state=target.value)
        await self._notify_both(record)
        self._update_gauges()
        return record

    async def _end(self, record: SessionRecord, reason: EndReason, actor: str) -> None:
        now = self._clock()
        await self._store.set_session_state(record.id, SessionState.ENDED, now, reason.value)
        self._sessions.pop(record.id, None)
        self._reconnecting_since.pop(record.id, None)
        ended = replace(record, state=SessionState.ENDED, ended_at=now, end_reason=reason.value)
        await self._store.audit(actor, "session_ended", record.id, reason=reason.value)
        await self._notify_both(ended)
        if record.state is SessionState.QUEUED:
            await self._publish_queue(record.specialty)
        try:
            self._metrics.session_quality.remove(record.id)
        except KeyError:
            pass
        self._update_gauges()

    async def _notify_both(self, record: SessionRecord) -> None:
        update = SessionUpdate(session=await self._info(record))
        await self._broker.publish(party_topic(f"cart:{record.cart_id}"), update)
        if record.specialist_id is not None:
            await self._broker.publish(party_topic(f"specialist:{record.specialist_id}"), update)

    async def _publish_queue(self, specialty: str) -> None:
        snapshot = await self.queue_snapshot(specialty)
        self._metrics.queue_length.labels(specialty).set(len(snapshot.entries))
        await self._broker.publish(specialty_topic(specialty), snapshot)

    async def _info(self, record: SessionRecord) -> SessionInfo:
        cart_name, clinic = await self._cart_names(record.cart_id)
        specialist_name = None
        if record.specialist_id is not None:
            specialist_name = await self._specialist_name(record.specialist_id)
        return SessionInfo(
            session_id=record.id,
            state=record.state,
            specialty=record.specialty,
            priority="urgent" if record.priority == "urgent" else "routine",
            reason=record.reason,
            cart_id=record.cart_id,
            cart_name=cart_name,
            clinic=clinic,
            specialist_id=record.specialist_id,
            specialist_name=specialist_name,
            created_at=record.created_at,
            accepted_at=record.accepted_at,
            ended_at=record.ended_at,
            end_reason=record.end_reason,
        )

    async def _cart_names(self, cart_id: str) -> tuple[str, str]:
        key = f"cart:{cart_id}"
        if key not in self._names:
            cart = await self._store.cart(cart_id)
            self._names[key] = (cart.name, cart.clinic) if cart else ("?", "?")
        return self._names[key]

    async def _specialist_name(self, specialist_id: str) -> str:
        key = f"specialist:{specialist_id}"
        if key not in self._names:
            spec = await self._store.specialist(specialist_id)
            self._names[key] = (spec.display_name if spec else "?", "")
        return self._names[key][0]

    def _update_gauges(self) -> None:
        self._metrics.sessions_open.set(len(self._sessions))
        self._metrics.sessions_live.set(
            sum(1 for r in self._sessions.values() if r.state is SessionState.LIVE)
        )


def _hangup_reason(party: Party, message: Hangup) -> EndReason:
    restarted = party.role == "cart" and message.reason == EndReason.CART_RESTARTED
    return EndReason.CART_RESTARTED if restarted else EndReason.HANGUP
