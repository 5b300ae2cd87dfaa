"""Every signalling message as a typed, validated class (wire format: docs/protocol.md).

A message travels as one JSON object: ``{"v": 1, "type": "<name>", ...fields}``.
`parse_message` turns text into a message or raises `ProtocolError` with a stable code;
`encode_message` does the reverse.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeVar, Union, get_args, get_origin

from telecart.signalling.errors import ErrorCode, ProtocolError
from telecart.signalling.session_state import SessionState

PROTOCOL_VERSION = 1
MAX_MESSAGE_BYTES = 64 * 1024

Role = Literal["cart", "specialist"]
Priority = Literal["routine", "urgent"]
MediaStateName = Literal["connecting", "connected", "disconnected", "failed"]

# Longest text accepted per field name; anything else falls back to DEFAULT_MAX_TEXT.
_TEXT_LIMITS: dict[str, int] = {"sdp": 60_000, "text": 2_000, "reason": 500, "candidate": 1_000}
DEFAULT_MAX_TEXT = 200


@dataclass(frozen=True, kw_only=True)
class Message:
    """Base of all messages; `TYPE` is the wire name."""

    TYPE: ClassVar[str] = ""


_REGISTRY: dict[str, type[Message]] = {}
M = TypeVar("M", bound=type[Message])


def _register(cls: M) -> M:
    _REGISTRY[cls.TYPE] = cls
    return cls


@dataclass(frozen=True, kw_only=True)
class SessionInfo:
    """A session as both parties see it."""

    session_id: str
    state: SessionState
    specialty: str
    priority: Priority
    reason: str
    cart_id: str
    cart_name: str
    clinic: str
    specialist_id: str | None = None
    specialist_name: str | None = None
    created_at: float
    accepted_at: float | None = None
    ended_at: float | None = None
    end_reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class QueueEntry:
    """One waiting request as a specialist sees it in the queue."""

    session_id: str
    cart_name: str
    clinic: str
    specialty: str
    priority: Priority
    reason: str
    position: int
    waiting_s: float


# --- sent by carts and specialists -------------------------------------------------------


@_register
@dataclass(frozen=True, kw_only=True)
class Hello(Message):
    """First message on a connection. Carts carry their token; specialists use the cookie."""

    TYPE: ClassVar[str] = "hello"
    role: Role
    token: str | None = None


@_register
@dataclass(frozen=True, kw_only=True)
class RequestConsultation(Message):
    """Join the queue, or with `appointment_id` start a booked consultation (no queue)."""

    TYPE: ClassVar[str] = "request_consultation"
    specialty: str
    priority: Priority = "routine"
    reason: str = ""
    appointment_id: str | None = None


@_register
@dataclass(frozen=True, kw_only=True)
class Accept(Message):
    TYPE: ClassVar[str] = "accept"
    session_id: str


@_register
@dataclass(frozen=True, kw_only=True)
class Cancel(Message):
    """The cart withdraws a request that nobody has accepted yet."""

    TYPE: ClassVar[str] = "cancel"
    session_id: str
    reason: str = ""


@_register
@dataclass(frozen=True, kw_only=True)
class Offer(Message):
    """The cart's SDP offer; each renegotiation is a new offer with a new `offer_id`."""

    TYPE: ClassVar[str] = "offer"
    session_id: str
    sdp: str
    offer_id: int | None = None


@_register
@dataclass(frozen=True, kw_only=True)
class Answer(Message):
    """The specialist's SDP answer; `offer_id` repeats the offer's, so a late answer to
    an earlier offer is told apart and ignored."""

    TYPE: ClassVar[str] = "answer"
    session_id: str
    sdp: str
    offer_id: int | None = None


@_register
@dataclass(frozen=True, kw_only=True)
class IceCandidate(Message):
    """A trickled ICE candidate; an empty `candidate` means end of candidates."""

    TYPE: ClassVar[str] = "ice_candidate"
    session_id: str
    candidate: str
    sdp_mid: str | None = None
    sdp_mline_index: int | None = None


@_register
@dataclass(frozen=True, kw_only=True)
class Hangup(Message):
    """End the session. A cart whose restarted agent cannot resume sends `reason`
    "cart_restarted", which the specialist is shown; any other reason is "hangup"."""

    TYPE: ClassVar[str] = "hangup"
    session_id: str
    reason: str = "hangup"


@_register
@dataclass(frozen=True, kw_only=True)
class Chat(Message):
    """Chat text; the server fills `sender` and `sent_at` when it relays it."""

    TYPE: ClassVar[str] = "chat"
    session_id: str
    text: str
    sender: str | None = None
    sent_at: float | None = None


@_register
@dataclass(frozen=True, kw_only=True)
class MediaState(Message):
    """A party reports its peer connection state; the server moves the session with it."""

    TYPE: ClassVar[str] = "media_state"
    session_id: str
    state: MediaStateName


@_register
@dataclass(frozen=True, kw_only=True)
class Quality(Message):
    """Connection quality published by the cart: a 0-5 score and what it is made of."""

    TYPE: ClassVar[str] = "quality"
    session_id: str
    score: int
    estimate_kbps: float | None = None
    loss: float | None = None
    rtt_ms: float | None = None
    rung: str | None = None


@_register
@dataclass(frozen=True, kw_only=True)
class Ping(Message):
    TYPE: ClassVar[str] = "ping"
    id: str


@_register
@dataclass(frozen=True, kw_only=True)
class Pong(Message):
    TYPE: ClassVar[str] = "pong"
    id: str


# --- sent by the server --------------------------------------------------------------------


@_register
@dataclass(frozen=True, kw_only=True)
class Welcome(Message):
    """Answer to a successful hello; `session` is the party's open session, if any."""

    TYPE: ClassVar[str] = "welcome"
    party_id: str
    role: Role
    name: str
    protocol_version: int = PROTOCOL_VERSION
    specialties: list[str] = field(default_factory=list)
    session: SessionInfo | None = None


@_register
@dataclass(frozen=True, kw_only=True)
class QueueUpdate(Message):
    """The whole queue of one specialty, urgent first, then oldest first."""

    TYPE: ClassVar[str] = "queue_update"
    specialty: str
    entries: list[QueueEntry] = field(default_factory=list)


@_register
@dataclass(frozen=True, kw_only=True)
class SessionUpdate(Message):
    TYPE: ClassVar[str] = "session_update"
    session: SessionInfo


@_register
@dataclass(frozen=True, kw_only=True)
class Error(Message):
    """A refusal with a stable `code`, a human `message`, and the type it answers."""

    TYPE: ClassVar[str] = "error"
    code: ErrorCode
    message: str
    ref_type: str | None = None


RELAYED_TYPES: frozenset[str] = frozenset(
    {Offer.TYPE, Answer.TYPE, IceCandidate.TYPE, Chat.TYPE, Quality.TYPE}
)


def message_types() -> dict[str, type[Message]]:
    """All message classes by wire name."""
    return dict(_REGISTRY)


def parse_message(raw: str | bytes) -> Message:
    """Decode and validate one wire message."""
    if len(raw) > MAX_MESSAGE_BYTES:
        raise ProtocolError(
            ErrorCode.MESSAGE_TOO_LARGE, f"Messages are limited to {MAX_MESSAGE_BYTES} bytes."
        )
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(ErrorCode.MALFORMED_JSON, f"Not valid JSON: {exc}") from None
    return message_from_dict(data)


def message_from_dict(data: object) -> Message:
    if not isinstance(data, dict):
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, "A message must be a JSON object.")
    version = data.get("v")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(
            ErrorCode.UNSUPPORTED_VERSION,
            f"Protocol version {version!r} is not supported; this server speaks "
            f"{PROTOCOL_VERSION}.",
        )
    kind = data.get("type")
    cls = _REGISTRY.get(kind) if isinstance(kind, str) else None
    if cls is None or not isinstance(kind, str):
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"Unknown message type {kind!r}.")
    body = {k: v for k, v in data.items() if k not in ("v", "type")}
    return _build(cls, body, kind)


def encode_message(message: Message) -> str:
    payload: dict[str, Any] = {"v": PROTOCOL_VERSION, "type": message.TYPE}
    payload.update(_to_json(message))
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def _to_json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    return value


T = TypeVar("T")


def _build(cls: type[T], body: dict[str, Any], where: str) -> T:
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(body) - set(known)
    if unknown:
        raise ProtocolError(
            ErrorCode.INVALID_MESSAGE, f"{where}: unexpected field(s) {sorted(unknown)}."
        )
    kwargs: dict[str, Any] = {}
    for name, f in known.items():
        if name not in body:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ProtocolError(ErrorCode.INVALID_MESSAGE, f"{where}: missing field '{name}'.")
            continue
        kwargs[name] = _coerce(hints[name], body[name], f"{where}.{name}", name)
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, where: str, name: str) -> Any:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        options = get_args(hint)
        if value is None and type(None) in options:
            return None
        (inner,) = [o for o in options if o is not type(None)]
        return _coerce(inner, value, where, name)
    if origin is Literal:
        if value not in get_args(hint):
            allowed = ", ".join(repr(a) for a in get_args(hint))
            raise ProtocolError(ErrorCode.INVALID_MESSAGE, f"{where}: must be one of {allowed}.")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ProtocolError(ErrorCode.INVALID_MESSAGE, f"{where}: must be a list.")
        (item,) = get_args(hint)
        return [_coerce(item, v, f"{where}[]", name) for v in value]
    if isinstance(hint, type) and issubclass(hint, str) and hint is not str:  # StrEnum
        try:
            return hint(value)
        except ValueError:
            raise ProtocolError(ErrorCode.INVALID_MESSAGE, f"{where}: unknown value.") from None
    if hint is str:
        if not isinstance(value, str):
            raise ProtocolError(ErrorCode.INVALID_MESSAGE, f"{where}: must be text.")
        limit = _TEXT_LIMITS.get(name, DEFAULT_MAX_TEXT)
        if len(value) > limit:
            raise ProtocolError(
                ErrorCode.INVALID_MESSAGE, f"{where}: longer than {limit} characters."
            )
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ProtocolError(ErrorCode.INVALID_MESSAGE, f"{where}: must be an integer.")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ProtocolError(ErrorCode.INVALID_MESSAGE, f"{where}: must be a number.")
        return float(value)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ProtocolError(ErrorCode.INVALID_MESSAGE, f"{where}: must be an object.")
        return _build(typing.cast(type[Any], hint), value, where)
    raise TypeError(f"unsupported field type {hint!r} at {where}")
