"""Stable error codes of the signalling protocol and the exception that carries one."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Machine-readable error codes; never renamed once published (see docs/protocol.md)."""

    MALFORMED_JSON = "malformed_json"
    UNKNOWN_TYPE = "unknown_type"
    INVALID_MESSAGE = "invalid_message"
    UNSUPPORTED_VERSION = "unsupported_version"
    MESSAGE_TOO_LARGE = "message_too_large"
    RATE_LIMITED = "rate_limited"
    AUTH_REQUIRED = "auth_required"
    AUTH_FAILED = "auth_failed"
    FORBIDDEN = "forbidden"
    NOT_IN_SESSION = "not_in_session"
    UNKNOWN_SESSION = "unknown_session"
    ALREADY_TAKEN = "already_taken"
    INVALID_STATE = "invalid_state"
    UNKNOWN_SPECIALTY = "unknown_specialty"
    SESSION_OPEN = "session_open"
    PEER_OFFLINE = "peer_offline"
    UNKNOWN_APPOINTMENT = "unknown_appointment"
    OUTSIDE_BOOKING_WINDOW = "outside_booking_window"
    INTERNAL = "internal"


class ProtocolError(Exception):
    """A message that cannot be accepted; `code` is for machines, `message` for people."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
