"""Full-frame text slates ("camera disconnected") drawn instead of a frozen last frame."""

from __future__ import annotations

import time

import cv2
import numpy as np
import numpy.typing as npt


def draw_slate(width: int, height: int, title: str, detail: str = "") -> npt.NDArray[np.uint8]:
    """A dark-red frame with a large centred `title`, a `detail` line and the time."""
    frame = np.zeros((height, width, 3), np.uint8)
    frame[:] = (30, 30, 110)
    lines = [(title, 1.0, 2), (detail, 0.55, 1), (time.strftime("%H:%M:%S"), 0.55, 1)]
    scale_base = max(0.4, width / 640)
    y = height // 2 - int(30 * scale_base)
    for text, scale, thickness in lines:
        if not text:
            continue
        s = scale * scale_base
        t = max(1, round(thickness * scale_base))
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, s, t)
        if tw > width - 8:
            s *= (width - 8) / tw
            (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, s, t)
        cv2.putText(
            frame,
            text,
            ((width - tw) // 2, y + th),
            cv2.FONT_HERSHEY_SIMPLEX,
            s,
            (255, 255, 255),
            t,
            cv2.LINE_AA,
        )
        y += th + int(24 * scale_base)
    return frame


def camera_disconnected_slate(width: int, height: int, camera: str) -> npt.NDArray[np.uint8]:
    return draw_slate(
        width, height, "CAMERA DISCONNECTED", f"{camera}: check the USB cable; reconnecting..."
    )
