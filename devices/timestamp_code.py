"""Capture time encoded in the top strip of a video frame, readable after VP8 coding.

The top `STRIP_ROWS` pixel rows form `CELLS` equal-width cells across the full width:
cell 0 is white (255) and cell 33 black (0) as reference levels; cells 1..32 carry bits
31..0 of ``int(captured_at * 1000) % 2**32`` (white = 1, black = 0). A reader samples a
small patch at each cell centre and thresholds halfway between the two references.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

STRIP_ROWS = 24
CELLS = 34
BITS = 32
_MIN_CONTRAST = 64.0


def _cell_edges(width: int) -> list[int]:
    return [round(i * width / CELLS) for i in range(CELLS + 1)]


def timestamp_ms(captured_at: float) -> int:
    """The value carried by the strip for a `time.time()` capture time."""
    return int(captured_at * 1000) % (1 << BITS)


def encode_timestamp(frame: npt.NDArray[np.uint8], captured_at: float) -> None:
    """Paint the strip into `frame` (H×W×3 or H×W uint8) in place."""
    value = timestamp_ms(captured_at)
    edges = _cell_edges(frame.shape[1])
    for cell in range(CELLS):
        if cell == 0:
            level = 255
        elif cell == CELLS - 1:
            level = 0
        else:
            level = 255 if (value >> (BITS - cell)) & 1 else 0
        frame[:STRIP_ROWS, edges[cell] : edges[cell + 1]] = level


def decode_timestamp(frame: npt.NDArray[np.uint8]) -> int | None:
    """The millisecond value in the strip, or None if the references are not there."""
    if frame.ndim not in (2, 3) or frame.shape[0] < STRIP_ROWS or frame.shape[1] < CELLS * 4:
        return None
    gray = frame.astype(np.float32) if frame.ndim == 2 else frame.astype(np.float32).mean(axis=2)
    edges = _cell_edges(frame.shape[1])
    half_w = max(1, (edges[1] - edges[0]) // 4)
    rows = slice(STRIP_ROWS // 4, STRIP_ROWS - STRIP_ROWS // 4)

    def sample(cell: int) -> float:
        centre = (edges[cell] + edges[cell + 1]) // 2
        return float(gray[rows, centre - half_w : centre + half_w + 1].mean())

    white, black = sample(0), sample(CELLS - 1)
    if white - black < _MIN_CONTRAST:
        return None
    threshold = (white + black) / 2
    value = 0
    for cell in range(1, CELLS - 1):
        value = (value << 1) | (1 if sample(cell) > threshold else 0)
    return value
