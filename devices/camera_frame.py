"""The unit every camera source delivers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class CameraFrame:
    """BGR uint8 H×W×3 image; `captured_at` is time.time() at capture; `live` is False
    for a "camera disconnected" slate."""

    image: npt.NDArray[np.uint8]
    captured_at: float
    live: bool = True

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])
