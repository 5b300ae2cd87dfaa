"""Frames between the cart process and its PortAudio worker: a 7-byte header, a payload."""

from __future__ import annotations

import asyncio
import enum
import struct
from typing import BinaryIO

HEADER = struct.Struct("<BHI")  # kind, stream id, payload length


class Kind(enum.IntEnum):
    """What a frame says; OPEN/CLOSE/PLAY go to the worker, the others come back."""

    OPEN = 1  # payload: JSON {"direction", "device", "role"}
    CLOSE = 2
    PLAY = 3  # payload: 960 int16 samples for an output stream
    OPENED = 10
    FAILED = 11  # payload: JSON {"code", "message"}
    CHUNK = 12  # payload: 960 int16 samples from an input stream
    CONSUMED = 13  # an output stream took one PLAY chunk
    LOST = 14  # payload: UTF-8 message; the stream's device stopped


Frame = tuple[Kind, int, bytes]


def encode(kind: Kind, stream: int, payload: bytes = b"") -> bytes:
    return HEADER.pack(kind, stream, len(payload)) + payload


def read_frame_blocking(source: BinaryIO) -> Frame | None:
    """The next frame from a pipe, or None at its end."""
    header = source.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    kind, stream, length = HEADER.unpack(header)
    payload = source.read(length) if length else b""
    return (Kind(kind), stream, payload) if len(payload) == length else None


async def read_frame(source: asyncio.StreamReader) -> Frame | None:
    """The next frame from the worker's stdout, or None at its end."""
    try:
        header = await source.readexactly(HEADER.size)
        kind, stream, length = HEADER.unpack(header)
        payload = await source.readexactly(length) if length else b""
    except asyncio.IncompleteReadError:
        return None
    return Kind(kind), stream, payload
