"""The consultation session as an explicit state machine."""

from __future__ import annotations

from enum import StrEnum

from telecart.signalling.errors import ErrorCode, ProtocolError


class SessionState(StrEnum):
    REQUESTED = "requested"
    QUEUED = "queued"
    ACCEPTED = "accepted"
    CONNECTING = "connecting"
    LIVE = "live"
    RECONNECTING = "reconnecting"
    ENDED = "ended"


class EndReason(StrEnum):
    HANGUP = "hangup"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    CART_LOST = "cart_lost"
    CART_RESTARTED = "cart_restarted"  # the cart's agent restarted and could not resume
    LINK_LOST = "link_lost"  # reconnecting for longer than server.reconnect_timeout_s
    ERROR = "error"


_ALLOWED: dict[SessionState, frozenset[SessionState]] = {
    SessionState.REQUESTED: frozenset({SessionState.QUEUED, SessionState.ENDED}),
    SessionState.QUEUED: frozenset({SessionState.ACCEPTED, SessionState.ENDED}),
    SessionState.ACCEPTED: frozenset(
        {SessionState.CONNECTING, SessionState.RECONNECTING, SessionState.ENDED}
    ),
    SessionState.CONNECTING: frozenset(
        {SessionState.LIVE, SessionState.RECONNECTING, SessionState.ENDED}
    ),
    SessionState.LIVE: frozenset(
        {SessionState.CONNECTING, SessionState.RECONNECTING, SessionState.ENDED}
    ),
    SessionState.RECONNECTING: frozenset(
        {SessionState.CONNECTING, SessionState.LIVE, SessionState.ENDED}
    ),
    SessionState.ENDED: frozenset(),
}

OPEN_STATES = frozenset(SessionState) - {SessionState.ENDED}
PAIRED_STATES = frozenset(
    {
        SessionState.ACCEPTED,
        SessionState.CONNECTING,
        SessionState.LIVE,
        SessionState.RECONNECTING,
    }
)


def can_transition(current: SessionState, target: SessionState) -> bool:
    return target in _ALLOWED[current]


def check_transition(current: SessionState, target: SessionState) -> None:
    """Raise `ProtocolError(INVALID_STATE)` unless `current -> target` is allowed."""
    if not can_transition(current, target):
        raise ProtocolError(
            ErrorCode.INVALID_STATE,
            f"A session that is {current.value} cannot become {target.value}.",
        )
