"""What the cart's uplink carries, kind by kind: a census for the media benchmark.

In the benchmark's agent process only (`bench/media_agent.py`), class-level wrappers count
every packet the cart hands to its DTLS transport: RTP by the track it belongs to (its
RTX repairs and probes apart), RTCP by packet type, SCTP by data channel (DATA chunks)
or chunk type (SACK and the rest). Each packet counts with what the link carries around
it: IPv4 and UDP, and SRTP's tag, SRTCP's index and tag, or the SCTP common header and a
DTLS record (AES-GCM). aiortc sends one SCTP chunk and one RTCP compound a packet.

On `edge` (session 14) this showed 32 of the 128 kbit/s going to SCTP and RTCP, sender
reports alone 3.8 (docs/adaptation.md, "Changes of session 14").
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcsctptransport import DataChunk, RTCSctpTransport
from aiortc.rtp import is_rtcp

from telecart.cart_agent.rate_controller import IP_UDP_BYTES

SRTP_TAG_BYTES = 10  # AES_CM_128_HMAC_SHA1_80
SRTCP_BYTES = 14  # index (4) and tag (10)
DTLS_RECORD_BYTES = 13 + 8 + 16  # header, AES-GCM explicit nonce and tag
SCTP_COMMON_BYTES = 12
RTCP_NAMES = {200: "SR", 201: "RR", 202: "SDES", 203: "BYE", 205: "RTPFB", 206: "PSFB"}
SCTP_CHUNK_NAMES = {3: "SACK", 4: "HEARTBEAT", 5: "HEARTBEAT-ACK", 14: "SHUTDOWN-COMPLETE"}


class UplinkCensus:
    """Bytes and packets sent by kind, from the first packet counted to `save`."""

    def __init__(self, roles: Callable[[], Mapping[int, str]]) -> None:
        self._roles = roles  # SSRC → "stethoscope", "exam repairs", …, asked on a new SSRC
        self._known: dict[int, str] = {}
        self.bytes: Counter[str] = Counter()
        self.packets: Counter[str] = Counter()
        self._first: float | None = None
        self._originals: tuple[Any, Any] | None = None

    def install(self) -> None:
        """Wrap aiortc's two send paths for this whole process, until `uninstall`."""
        census = self
        send_rtp, send_chunk = self._originals = (
            RTCDtlsTransport._send_rtp,
            RTCSctpTransport._send_chunk,
        )

        async def counted_rtp(transport: RTCDtlsTransport, data: bytes) -> None:
            census.count(*census.rtp_kind(data))
            await send_rtp(transport, data)

        async def counted_chunk(transport: RTCSctpTransport, chunk: Any) -> None:
            census.count(census.sctp_kind(transport, chunk), _chunk_size(chunk))
            await send_chunk(transport, chunk)

        RTCDtlsTransport._send_rtp = counted_rtp  # type: ignore[method-assign, assignment]
        RTCSctpTransport._send_chunk = counted_chunk  # type: ignore[method-assign, assignment]

    def uninstall(self) -> None:
        if self._originals is not None:
            RTCDtlsTransport._send_rtp, RTCSctpTransport._send_chunk = self._originals  # type: ignore[method-assign]
            self._originals = None

    def count(self, kind: str, size: int) -> None:
        if self._first is None:
            self._first = time.monotonic()
        self.bytes[kind] += size + IP_UDP_BYTES
        self.packets[kind] += 1

    def rtp_kind(self, data: bytes) -> tuple[str, int]:
        if is_rtcp(data):
            return f"rtcp {RTCP_NAMES.get(data[1], data[1])}", len(data) + SRTCP_BYTES
        ssrc = int.from_bytes(data[8:12], "big") if len(data) >= 12 else 0
        if ssrc not in self._known:
            self._known.update(self._roles())
        return f"rtp {self._known.get(ssrc, 'other')}", len(data) + SRTP_TAG_BYTES

    @staticmethod
    def sctp_kind(transport: RTCSctpTransport, chunk: Any) -> str:
        if isinstance(chunk, DataChunk):
            channel = transport._data_channels.get(chunk.stream_id)
            return f"sctp {channel.label if channel is not None else chunk.stream_id}"
        return f"sctp {SCTP_CHUNK_NAMES.get(chunk.type, 'other')}"

    def figures(self) -> dict[str, Any]:
        """kbit/s and packets a second by kind, over the time counted."""
        seconds = time.monotonic() - self._first if self._first is not None else 0.0
        if seconds <= 0:
            return {"seconds": 0.0, "kbps": {}, "packets_per_s": {}}
        order = sorted(self.bytes, key=lambda kind: -self.bytes[kind])
        return {
            "seconds": round(seconds, 1),
            "kbps": {kind: round(self.bytes[kind] * 8 / seconds / 1000, 2) for kind in order},
            "packets_per_s": {kind: round(self.packets[kind] / seconds, 2) for kind in order},
        }

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.figures()), encoding="utf-8")


def _chunk_size(chunk: Any) -> int:
    return len(bytes(chunk)) + SCTP_COMMON_BYTES + DTLS_RECORD_BYTES


def read_census(path: Path) -> dict[str, float]:
    """kbit/s by kind from a saved census; empty if there is none."""
    try:
        kbps = json.loads(path.read_text(encoding="utf-8"))["kbps"]
    except (OSError, ValueError, KeyError):
        return {}
    return {str(kind): float(value) for kind, value in kbps.items()}
