"""Protocol name (the `protocol` key of `[[devices.serial]]`) to its frame parser."""

from __future__ import annotations

from collections.abc import Mapping

from .accutorr_protocol import AccutorrParser
from .bp_protocol import SunTechAdvantageParser
from .key_value_protocol import KeyValueParser
from .oximeter_protocol import NoninDataFormat2Parser
from .vitals import FrameParser


def make_parser(protocol: str, fields: Mapping[str, str] | None = None) -> FrameParser:
    if protocol == "nonin_oem3_df2":
        return NoninDataFormat2Parser()
    if protocol == "suntech_advantage":
        return SunTechAdvantageParser()
    if protocol == "datascope_accutorr":
        return AccutorrParser()
    if protocol == "key_value":
        return KeyValueParser(fields or None)
    raise ValueError(f"unknown serial protocol {protocol!r}")
