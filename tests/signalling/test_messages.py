"""Validation of single messages and the session state machine, without a network."""

from __future__ import annotations

import json

import pytest

from telecart.signalling.errors import ErrorCode, ProtocolError
from telecart.signalling.messages import (
    MAX_MESSAGE_BYTES,
    IceCandidate,
    QueueEntry,
    QueueUpdate,
    RequestConsultation,
    encode_message,
    parse_message,
)
from telecart.signalling.session_state import (
    SessionState,
    can_transition,
    check_transition,
)


def _code(raw: str | bytes) -> ErrorCode:
    with pytest.raises(ProtocolError) as refused:
        parse_message(raw)
    return refused.value.code


def test_defaults_fill_optional_fields() -> None:
    msg = parse_message('{"v":1,"type":"request_consultation","specialty":"ent"}')
    assert msg == RequestConsultation(specialty="ent", priority="routine", reason="")


def test_literal_values_are_enforced() -> None:
    raw = '{"v":1,"type":"request_consultation","specialty":"ent","priority":"asap"}'
    assert _code(raw) is ErrorCode.INVALID_MESSAGE


def test_booleans_are_not_integers() -> None:
    raw = {
        "v": 1,
        "type": "ice_candidate",
        "session_id": "s",
        "candidate": "",
        "sdp_mline_index": True,
    }
    assert _code(json.dumps(raw)) is ErrorCode.INVALID_MESSAGE


def test_null_allowed_only_where_optional() -> None:
    ok = parse_message(
        '{"v":1,"type":"ice_candidate","session_id":"s","candidate":"","sdp_mid":null}'
    )
    assert isinstance(ok, IceCandidate) and ok.sdp_mid is None
    assert _code('{"v":1,"type":"accept","session_id":null}') is ErrorCode.INVALID_MESSAGE


def test_nested_objects_are_validated() -> None:
    good = QueueUpdate(
        specialty="ent",
        entries=[
            QueueEntry(
                session_id="s", cart_name="c", clinic="k", specialty="ent",
                priority="routine", reason="", position=1, waiting_s=3.0,
            )
        ],
    )  # fmt: skip
    assert parse_message(encode_message(good)) == good
    bad = json.loads(encode_message(good))
    bad["entries"][0]["position"] = "first"
    assert _code(json.dumps(bad)) is ErrorCode.INVALID_MESSAGE


def test_size_limit_applies_before_parsing() -> None:
    assert _code("x" * (MAX_MESSAGE_BYTES + 1)) is ErrorCode.MESSAGE_TOO_LARGE


def test_non_utf8_bytes_are_malformed() -> None:
    assert _code(b"\xff\xfe{") is ErrorCode.MALFORMED_JSON


@pytest.mark.parametrize(
    ("current", "target", "allowed"),
    [
        (SessionState.QUEUED, SessionState.ACCEPTED, True),
        (SessionState.QUEUED, SessionState.LIVE, False),
        (SessionState.ACCEPTED, SessionState.CONNECTING, True),
        (SessionState.CONNECTING, SessionState.LIVE, True),
        (SessionState.LIVE, SessionState.RECONNECTING, True),
        (SessionState.RECONNECTING, SessionState.LIVE, True),
        (SessionState.ENDED, SessionState.LIVE, False),
        (SessionState.ENDED, SessionState.QUEUED, False),
        (SessionState.LIVE, SessionState.QUEUED, False),
    ],
)
def test_state_machine(current: SessionState, target: SessionState, allowed: bool) -> None:
    assert can_transition(current, target) is allowed
    if not allowed:
        with pytest.raises(ProtocolError) as refused:
            check_transition(current, target)
        assert refused.value.code is ErrorCode.INVALID_STATE


def test_every_open_state_can_end() -> None:
    for state in SessionState:
        if state is not SessionState.ENDED:
            assert can_transition(state, SessionState.ENDED)
