"""docs/protocol.md stays true: every example parses and every message type has one."""

from __future__ import annotations

import json
import re
from pathlib import Path

from telecart.signalling.messages import encode_message, message_types, parse_message

DOC = Path(__file__).parents[2] / "docs" / "protocol.md"


def _examples() -> list[str]:
    return re.findall(r"```json\n(.*?)\n```", DOC.read_text(encoding="utf-8"), re.S)


def test_every_example_parses_and_round_trips() -> None:
    for raw in _examples():
        message = parse_message(raw)
        assert json.loads(encode_message(message)) == json.loads(raw)


def test_every_message_type_is_documented() -> None:
    documented = {json.loads(raw)["type"] for raw in _examples()}
    assert documented == set(message_types())
