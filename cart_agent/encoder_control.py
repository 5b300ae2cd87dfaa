"""VP8 whose bit rate follows the rate controller without rebuilding the encoder.

aiortc's `Vp8Encoder` clamps its target to 250-1500 kbit/s and, when the target moves by
more than 10 %, throws the libvpx encoder away and builds a new one, whose first frame is
a keyframe: a moving estimate becomes a keyframe storm. PyAV cannot change the rate of an
open libvpx encoder (setting `bit_rate` after opening has no effect), so
`AdaptiveVp8Encoder` drives libvpx directly through ctypes - the same library PyAV
ships - and changes the rate with `vpx_codec_enc_config_set`, as libwebrtc's
`LibvpxVp8Encoder::SetRates` does. A new encoder (and so a keyframe) is made only when
the picture size changes. Keyframes asked for by the receiver (PLI/FIR) are rate-limited.

The encoder reaches aiortc through one seam, `_sender_module.get_encoder`, which
`install_encoder_control()` wraps (see docs/adaptation.md). REMB from the receiver no
longer sets the rate directly: it is recorded in `remb_bps` for the estimator, which
treats it as a ceiling.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, Final

import aiortc
import aiortc.rtcrtpsender
import av
import numpy as np
from aiortc.codecs.base import Encoder
from aiortc.codecs.vpx import PACKET_MAX, Vp8Encoder, VpxPayloadDescriptor, number_of_threads
from aiortc.mediastreams import VIDEO_TIME_BASE, convert_timebase
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from av.frame import Frame

from .video_fec import VideoFec

log = logging.getLogger(__name__)

TESTED_AIORTC: Final = ("1.16.",)
MIN_BITRATE: Final = 30_000
MAX_BITRATE: Final = 4_000_000
VIDEO_CLOCK: Final = 90_000

# libvpx ABI (vpx_encoder.h, vp8cx.h); `_check_layout` verifies the offsets at load time.
_VPX_CODEC_OK: Final = 0
_VPX_CODEC_ABI_MISMATCH: Final = 3
_VPX_IMG_FMT_I420: Final = 0x102
_VPX_DL_REALTIME: Final = 1
_VPX_EFLAG_FORCE_KF: Final = 1
_VPX_FRAME_IS_KEY: Final = 0x1
_VPX_CODEC_CX_FRAME_PKT: Final = 0
_VPX_CBR: Final = 1
_VPX_KF_AUTO: Final = 1
_VP8E_SET_CPUUSED: Final = 13
_VP8E_SET_NOISE_SENSITIVITY: Final = 15
_VP8E_SET_STATIC_THRESHOLD: Final = 17
_VP8E_SET_TOKEN_PARTITIONS: Final = 18
_VP8E_SET_MAX_INTRA_BITRATE_PCT: Final = 26
# vpx_codec_enc_cfg_t fields, as indexes of 32-bit words.
_CFG_THREADS, _CFG_W, _CFG_H, _CFG_TB_NUM, _CFG_TB_DEN = 1, 3, 4, 7, 8
_CFG_ERROR_RESILIENT, _CFG_LAG, _CFG_DROPFRAME = 9, 11, 12
_CFG_END_USAGE, _CFG_TARGET, _CFG_MIN_Q, _CFG_MAX_Q = 18, 28, 29, 30
_CFG_UNDERSHOOT, _CFG_OVERSHOOT, _CFG_BUF, _CFG_BUF_INIT, _CFG_BUF_OPT = 31, 32, 33, 34, 35
_CFG_KF_MODE, _CFG_KF_MAX = 40, 42
_CFG_BYTES: Final = 4096  # larger than any libvpx version's config struct
_CTX_BYTES: Final = 256
_IMG_BYTES: Final = 512


class LibvpxUnavailable(RuntimeError):
    """libvpx could not be loaded or its ABI is not the one this module knows."""


class _CxPacket(ctypes.Structure):
    _fields_ = [
        ("kind", ctypes.c_int),
        ("buf", ctypes.c_void_p),
        ("sz", ctypes.c_size_t),
        ("pts", ctypes.c_int64),
        ("duration", ctypes.c_ulong),
        ("flags", ctypes.c_uint32),
    ]


def _library_path(stem: str) -> str | None:
    """The copy PyAV's wheel ships (av.libs/), else the system's."""
    libs = os.path.join(os.path.dirname(os.path.dirname(av.__file__)), "av.libs")
    found = sorted(glob.glob(os.path.join(libs, f"lib{stem}-*.so*")))
    return found[0] if found else ctypes.util.find_library(stem)


@dataclass(frozen=True)
class _Libvpx:
    lib: ctypes.CDLL
    iface: int
    abi_version: int
    version: str


@cache
def libvpx() -> _Libvpx:
    """Load libvpx once, find its encoder ABI version and check the config layout."""
    path = _library_path("vpx")
    if path is None:
        raise LibvpxUnavailable("libvpx not found next to PyAV or on the system")
    lib = ctypes.CDLL(path)
    lib.vpx_codec_vp8_cx.restype = ctypes.c_void_p
    lib.vpx_codec_version_str.restype = ctypes.c_char_p
    lib.vpx_codec_enc_config_default.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint]
    lib.vpx_codec_enc_init_ver.argtypes = [
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_long,
        ctypes.c_int,
    ]
    lib.vpx_codec_enc_config_set.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.vpx_codec_encode.argtypes = [
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_int64,
        ctypes.c_ulong,
        ctypes.c_long,
        ctypes.c_ulong,
    ]
    lib.vpx_codec_get_cx_data.restype = ctypes.POINTER(_CxPacket)
    lib.vpx_codec_get_cx_data.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)]
    lib.vpx_codec_destroy.argtypes = [ctypes.c_void_p]
    lib.vpx_codec_error.restype = ctypes.c_char_p
    lib.vpx_codec_error.argtypes = [ctypes.c_void_p]
    lib.vpx_img_wrap.restype = ctypes.c_void_p
    lib.vpx_img_wrap.argtypes = [
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.c_void_p,
    ]
    iface = lib.vpx_codec_vp8_cx()
    version = (lib.vpx_codec_version_str() or b"?").decode()
    cfg = _default_config(lib, iface)
    _check_layout(cfg, version)
    # The encoder ABI version is a compile-time constant of the headers; an init with the
    # wrong one fails at once with ABI_MISMATCH, before touching anything.
    for abi in range(1, 128):
        ctx = (ctypes.c_uint8 * _CTX_BYTES)()
        res = lib.vpx_codec_enc_init_ver(ctx, iface, cfg, 0, abi)
        if res == _VPX_CODEC_OK:
            lib.vpx_codec_destroy(ctx)
            return _Libvpx(lib, iface, abi, version)
        if res != _VPX_CODEC_ABI_MISMATCH:
            break
    raise LibvpxUnavailable(f"libvpx {version}: no encoder ABI version accepted")


def _default_config(lib: ctypes.CDLL, iface: int) -> ctypes.Array[ctypes.c_uint32]:
    cfg = (ctypes.c_uint32 * (_CFG_BYTES // 4))()
    if lib.vpx_codec_enc_config_default(iface, cfg, 0) != _VPX_CODEC_OK:
        raise LibvpxUnavailable("libvpx refused to give its default VP8 configuration")
    return cfg


def _check_layout(cfg: ctypes.Array[ctypes.c_uint32], version: str) -> None:
    expected = {_CFG_W: 320, _CFG_H: 240, _CFG_TB_NUM: 1, _CFG_TB_DEN: 30, _CFG_TARGET: 256}
    expected |= {_CFG_LAG: 0, 14: 1, 15: 1, 16: 60, 17: 30}  # lag, scaled w/h, resize thresholds
    expected |= {_CFG_MIN_Q: 4, _CFG_MAX_Q: 63, _CFG_BUF: 6000, _CFG_KF_MAX: 128}
    wrong = {i: cfg[i] for i, value in expected.items() if cfg[i] != value}
    if wrong:
        raise LibvpxUnavailable(f"libvpx {version}: unexpected config layout {wrong}")


class LibvpxVp8:
    """One open libvpx VP8 encoder in real-time CBR, fed I420 buffers."""

    def __init__(self, width: int, height: int, bitrate_bps: int, threads: int) -> None:
        vpx = libvpx()
        self._lib = vpx.lib
        self._open = False
        self.width = width
        self.height = height
        self._cfg = _default_config(vpx.lib, vpx.iface)
        cfg = self._cfg
        cfg[_CFG_THREADS] = threads
        cfg[_CFG_W], cfg[_CFG_H] = width, height
        cfg[_CFG_TB_NUM], cfg[_CFG_TB_DEN] = 1, VIDEO_CLOCK
        cfg[_CFG_ERROR_RESILIENT] = 1  # decodable after a loss without waiting for a keyframe
        cfg[_CFG_LAG] = 0
        cfg[_CFG_DROPFRAME] = 30  # skip a frame rather than overshoot a thin link
        cfg[_CFG_END_USAGE] = _VPX_CBR
        cfg[_CFG_TARGET] = max(1, bitrate_bps // 1000)
        cfg[_CFG_MIN_Q], cfg[_CFG_MAX_Q] = 2, 56
        cfg[_CFG_UNDERSHOOT], cfg[_CFG_OVERSHOOT] = 100, 15
        cfg[_CFG_BUF], cfg[_CFG_BUF_INIT], cfg[_CFG_BUF_OPT] = 1000, 500, 600
        cfg[_CFG_KF_MODE], cfg[_CFG_KF_MAX] = _VPX_KF_AUTO, 3000
        self._ctx = (ctypes.c_uint8 * _CTX_BYTES)()
        res = vpx.lib.vpx_codec_enc_init_ver(self._ctx, vpx.iface, cfg, 0, vpx.abi_version)
        if res != _VPX_CODEC_OK:
            raise LibvpxUnavailable(f"libvpx VP8 init failed ({res})")
        self._open = True
        for control, value in (
            (_VP8E_SET_CPUUSED, -6),
            (_VP8E_SET_NOISE_SENSITIVITY, 4),
            (_VP8E_SET_STATIC_THRESHOLD, 1),
            (_VP8E_SET_TOKEN_PARTITIONS, 0),
            (_VP8E_SET_MAX_INTRA_BITRATE_PCT, 300),  # a keyframe is at most 3 frames' worth
        ):
            if vpx.lib.vpx_codec_control_(self._ctx, ctypes.c_int(control), ctypes.c_int(value)):
                log.warning("libvpx rejected control %d=%d", control, value)
        self._img = (ctypes.c_uint8 * _IMG_BYTES)()

    @property
    def bitrate_bps(self) -> int:
        return int(self._cfg[_CFG_TARGET]) * 1000

    def set_bitrate(self, bitrate_bps: int) -> None:
        """Change the target rate in place: no new encoder, no keyframe."""
        kbps = max(1, bitrate_bps // 1000)
        if kbps == self._cfg[_CFG_TARGET]:
            return
        self._cfg[_CFG_TARGET] = kbps
        if self._lib.vpx_codec_enc_config_set(self._ctx, self._cfg) != _VPX_CODEC_OK:
            raise RuntimeError(f"libvpx refused a rate change: {self._error()}")

    def encode(
        self, i420: np.ndarray[Any, Any], pts: int, duration: int, keyframe: bool
    ) -> list[tuple[bytes, bool]]:
        """Encode one contiguous I420 picture; returns (frame data, is keyframe) pairs."""
        image = np.ascontiguousarray(i420, dtype=np.uint8)
        wrapped = self._lib.vpx_img_wrap(
            self._img, _VPX_IMG_FMT_I420, self.width, self.height, 1, image.ctypes.data
        )
        if not wrapped:
            raise RuntimeError("libvpx could not wrap the picture")
        flags = _VPX_EFLAG_FORCE_KF if keyframe else 0
        res = self._lib.vpx_codec_encode(
            self._ctx, self._img, pts, max(1, duration), flags, _VPX_DL_REALTIME
        )
        if res != _VPX_CODEC_OK:
            raise RuntimeError(f"libvpx encode failed: {self._error()}")
        out: list[tuple[bytes, bool]] = []
        cursor = ctypes.c_void_p()
        while True:
            packet = self._lib.vpx_codec_get_cx_data(self._ctx, ctypes.byref(cursor))
            if not packet:
                return out
            if packet.contents.kind == _VPX_CODEC_CX_FRAME_PKT:
                data = ctypes.string_at(packet.contents.buf, packet.contents.sz)
                out.append((data, bool(packet.contents.flags & _VPX_FRAME_IS_KEY)))

    def close(self) -> None:
        if self._open:
            self._open = False
            self._lib.vpx_codec_destroy(self._ctx)

    def __del__(self) -> None:
        self.close()

    def _error(self) -> str:
        message = self._lib.vpx_codec_error(self._ctx)
        return message.decode() if message else "unknown error"


@dataclass(frozen=True)
class VideoLayer:
    """What the ladder asks of one video track. `width`/`height` bound the picture."""

    width: int
    height: int
    fps: float
    bitrate_bps: int
    paused: bool = False


START_BOX: tuple[int, int] = (320, 180)


def fit_within(src_w: int, src_h: int, max_w: int, max_h: int) -> tuple[int, int]:
    """The largest even size within the box, keeping the aspect ratio, never upscaled."""
    scale = min(max_w / src_w, max_h / src_h, 1.0)
    return max(2, int(src_w * scale) // 2 * 2), max(2, int(src_h * scale) // 2 * 2)


@dataclass
class EncoderCounters:
    frames: int = 0
    dropped: int = 0
    keyframes: int = 0
    keyframe_requests: int = 0
    keyframes_deferred: int = 0
    encoders_built: int = 0
    rate_changes: int = 0
    bytes: int = 0


# A FEC packet is as long as the longest packet it protects, header extensions twice and
# 15 bytes more; SRTP (pylibsrtp) refuses packets over 1356 bytes, and aiortc fills VP8
# packets to 1300.
FEC_PROTECTED_PAYLOAD = 1200


def packetize_vp8(data: bytes, picture_id: int, max_payload: int) -> list[bytes]:
    """aiortc's VP8 packetization (`Vp8Encoder._packetize`) with payloads of at most
    `max_payload` bytes instead of its fixed `PACKET_MAX`."""
    descriptor = VpxPayloadDescriptor(partition_start=1, partition_id=0, picture_id=picture_id)
    payloads = []
    pos = 0
    while pos < len(data):
        header = bytes(descriptor)
        size = max_payload - len(header)
        payloads.append(header + data[pos : pos + size])
        descriptor.partition_start = 0
        pos += size
    return payloads


class AdaptiveVp8Encoder(Vp8Encoder):
    """aiortc's VP8 encoder interface with in-place rate changes and controlled keyframes.

    Thread-safe for aiortc's use: `encode` runs in an executor thread, the setters run on
    the event loop; a setting takes effect at the next frame.
    """

    def __init__(
        self,
        bitrate_bps: int = 100_000,
        *,
        keyframe_min_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        libvpx()  # fail here, not in the first frame, if libvpx is unusable
        self._lock = threading.Lock()
        self._clock = clock
        # Small until the rate controller's first step (≤ 0.5 s after the first frame):
        # two cameras at full size for that long overflowed a 384 kbit/s queue (33 % loss).
        self._layer = VideoLayer(*START_BOX, 15.0, _clamp(bitrate_bps))
        self._vpx: LibvpxVp8 | None = None
        self._last_keyframe_at = -1e9
        self._keyframe_pending = False
        self._next_due_pts: int | None = None
        self.keyframe_min_interval_s = keyframe_min_interval_s
        self.remb_bps: int | None = None
        self.counters = EncoderCounters()
        self.fec: VideoFec | None = None  # set by the rate controller when FEC is negotiated

    # aiortc calls this setter with the receiver's REMB; the rate controller decides.
    @property
    def target_bitrate(self) -> int:
        return self._layer.bitrate_bps

    @target_bitrate.setter
    def target_bitrate(self, bitrate: int) -> None:
        self.remb_bps = bitrate

    @property
    def layer(self) -> VideoLayer:
        return self._layer

    def set_target_bitrate(self, bitrate_bps: int) -> None:
        with self._lock:
            self._layer = VideoLayer(
                self._layer.width,
                self._layer.height,
                self._layer.fps,
                _clamp(bitrate_bps),
                self._layer.paused,
            )

    def set_layer(self, layer: VideoLayer) -> None:
        with self._lock:
            self._layer = VideoLayer(
                layer.width, layer.height, layer.fps, _clamp(layer.bitrate_bps), layer.paused
            )

    def request_keyframe(self) -> None:
        """Make the next encoded frame a keyframe (within the minimum interval)."""
        with self._lock:
            self._keyframe_pending = True

    def encode(self, frame: Frame, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        assert isinstance(frame, av.VideoFrame)
        timestamp = convert_timebase(
            frame.pts or 0, frame.time_base or VIDEO_TIME_BASE, VIDEO_TIME_BASE
        )
        with self._lock:
            layer = self._layer
            if force_keyframe:
                self.counters.keyframe_requests += 1
                self._keyframe_pending = True
        if layer.paused or not self._due(timestamp, layer.fps):
            self.counters.dropped += 1
            return [], timestamp

        width, height = fit_within(
            frame.width, frame.height, layer.width or frame.width, layer.height or frame.height
        )
        if frame.width != width or frame.height != height or frame.format.name != "yuv420p":
            frame = frame.reformat(width=width, height=height, format="yuv420p")
        vpx = self._vpx
        if vpx is None or (vpx.width, vpx.height) != (width, height):
            if vpx is not None:
                vpx.close()
            threads = number_of_threads(width * height, multiprocessing.cpu_count())
            vpx = self._vpx = LibvpxVp8(width, height, layer.bitrate_bps, threads)
            self.counters.encoders_built += 1
        elif vpx.bitrate_bps // 1000 != layer.bitrate_bps // 1000:
            vpx.set_bitrate(layer.bitrate_bps)
            self.counters.rate_changes += 1

        keyframe = False
        now = self._clock()
        if self._keyframe_pending:
            if now - self._last_keyframe_at >= self.keyframe_min_interval_s:
                keyframe = True
                self._keyframe_pending = False
            else:
                self.counters.keyframes_deferred += 1
        duration = int(VIDEO_CLOCK / max(layer.fps, 1.0))
        i420 = frame.to_ndarray(format="yuv420p")
        data = b""
        for chunk, is_key in vpx.encode(i420, timestamp, duration, keyframe):
            data += chunk
            if is_key:
                self.counters.keyframes += 1
                self._last_keyframe_at = now
                self._keyframe_pending = False
        self.counters.frames += 1
        self.counters.bytes += len(data)
        if not data:
            return [], timestamp
        fec = self.fec
        max_payload = PACKET_MAX if fec is None else FEC_PROTECTED_PAYLOAD
        payloads = packetize_vp8(data, self.picture_id, max_payload)
        self.picture_id = (self.picture_id + 1) % (1 << 15)
        slot = fec.slot() if fec is not None else None
        if slot is not None:  # first, so that aiortc marks the frame's last packet
            payloads = [slot, *payloads]
        return payloads, timestamp

    def _due(self, pts: int, fps: float) -> bool:
        """Frame-rate decimation: keep a frame only once its slot has come."""
        if self._next_due_pts is None or pts >= self._next_due_pts or fps <= 0:
            # a tenth of a frame of slack so a 25 fps source is not halved by jitter
            self._next_due_pts = pts + int(VIDEO_CLOCK / max(fps, 1.0) * 0.9)
            return True
        return False

    def close(self) -> None:
        if self._vpx is not None:
            self._vpx.close()
            self._vpx = None


def _clamp(bitrate_bps: int) -> int:
    return max(MIN_BITRATE, min(int(bitrate_bps), MAX_BITRATE))


# --- the aiortc seam ------------------------------------------------------------------

EncoderFactory = Callable[[RTCRtpCodecParameters], Encoder]
# aiortc's sender module looks `get_encoder` up in its own namespace at each new sender.
_sender_module: Any = aiortc.rtcrtpsender
_factories: dict[str, EncoderFactory] = {}


def aiortc_seams_present() -> bool:
    """The two aiortc internals this package relies on are still there."""
    sender_init = aiortc.rtcrtpsender.RTCRtpSender.__init__.__code__
    return (
        callable(getattr(_sender_module, "get_encoder", None))
        and "_RTCRtpSender__encoder" in sender_init.co_names
    )


def register_encoder(mime_type: str, factory: EncoderFactory) -> bool:
    """Make aiortc build senders' encoders for `mime_type` with `factory`.

    Wraps `_sender_module.get_encoder` once (the function aiortc calls for a sender's
    first frame). Returns False, leaving aiortc as it is, if the seam has moved.
    """
    if not aiortc.__version__.startswith(TESTED_AIORTC):
        log.warning(
            "encoder seam tested on aiortc %s, running %s", TESTED_AIORTC, aiortc.__version__
        )
    if not aiortc_seams_present():
        log.error("aiortc %s has no get_encoder seam: rate control is off", aiortc.__version__)
        return False
    _factories[mime_type.lower()] = factory
    current = _sender_module.get_encoder
    if getattr(current, "_telecart", False):
        return True
    stock = current

    def get_encoder(codec: RTCRtpCodecParameters) -> Encoder:
        factory = _factories.get(codec.mimeType.lower())
        return factory(codec) if factory is not None else stock(codec)

    get_encoder._telecart = True  # type: ignore[attr-defined]
    get_encoder._stock = stock  # type: ignore[attr-defined]
    _sender_module.get_encoder = get_encoder
    return True


def uninstall_encoders() -> None:
    """Restore aiortc's own `get_encoder` (tests)."""
    _factories.clear()
    current = _sender_module.get_encoder
    stock = getattr(current, "_stock", None)
    if stock is not None:
        _sender_module.get_encoder = stock


def install_encoder_control() -> bool:
    """Make every VP8 sender use `AdaptiveVp8Encoder`. Call once at start-up."""
    try:
        libvpx()
    except (LibvpxUnavailable, OSError) as exc:
        log.error("VP8 rate control unavailable, using aiortc's encoder: %s", exc)
        return False
    return register_encoder("video/VP8", lambda codec: AdaptiveVp8Encoder())


def encoder_of(sender: aiortc.RTCRtpSender) -> Encoder | None:
    """The sender's encoder, once aiortc has made it (at the first frame)."""
    encoder = getattr(sender, "_RTCRtpSender__encoder", None)
    return encoder if isinstance(encoder, Encoder) else None
