"""Opus for a stethoscope: "audio" application, mono, in-band FEC fed from loss reports.

aiortc's `OpusEncoder` upmixes to stereo and encodes at a fixed 96 kbit/s in the "voip"
application, whose high-pass filter takes about 19 dB off 20 Hz and 8 dB off 40 Hz,
where S1-S4 heart sounds live. Through PyAV, libopus's settings are fixed when the
encoder opens, so the loss percentage and bit rate could not follow the link. Like
`encoder_control`, this module drives the libopus PyAV ships directly through ctypes and
changes bit rate and expected loss with `opus_encoder_ctl` at any time.

Profiles per audio role:
- stethoscope: "audio" application (only a 3 Hz DC filter, flat down to 20 Hz), mono,
  48 kHz, in-band FEC on, DTX off (a quiet chest must not become silence), 24-64 kbit/s;
- voice: "voip" application (speech tuned), mono, FEC on, 8-16 kbit/s, wideband at most:
  unlimited, libopus 1.6 codes 24 kbit/s of speech as hybrid full band and puts no FEC
  in it (0 of 199 packets at 5 % loss; 136 of 199 at wideband); speech needs no more.
"""

from __future__ import annotations

import ctypes
import fractions
import logging
import math
import threading
from dataclasses import dataclass
from functools import cache
from typing import Any, Final, Literal

import numpy as np
from aiortc.codecs.base import Encoder
from aiortc.mediastreams import convert_timebase
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from av import AudioFrame, AudioResampler
from av.frame import Frame
from av.packet import Packet

from .encoder_control import _library_path, register_encoder
from .opus_red import RedPacker, red_primary_payload_type

log = logging.getLogger(__name__)

SAMPLE_RATE: Final = 48_000
FRAME_SAMPLES: Final = 960  # 20 ms
TIME_BASE: Final = fractions.Fraction(1, SAMPLE_RATE)
MAX_PACKET: Final = 1500

Application = Literal["audio", "voip"]
Bandwidth = Literal["narrowband", "mediumband", "wideband", "superwideband", "fullband"]
_APPLICATIONS: Final[dict[str, int]] = {"voip": 2048, "audio": 2049}
_BANDWIDTHS: Final[dict[Bandwidth, int]] = {
    "narrowband": 1101,
    "mediumband": 1102,
    "wideband": 1103,
    "superwideband": 1104,
    "fullband": 1105,
}
_SET_BITRATE, _GET_BITRATE = 4002, 4003
_SET_MAX_BANDWIDTH, _GET_MAX_BANDWIDTH = 4004, 4005
_SET_VBR = 4006
_SET_COMPLEXITY = 4010
_SET_INBAND_FEC, _GET_INBAND_FEC = 4012, 4013
_SET_PACKET_LOSS_PERC, _GET_PACKET_LOSS_PERC = 4014, 4015
_SET_DTX, _GET_DTX = 4016, 4017
_GET_APPLICATION = 4001


class LibopusUnavailable(RuntimeError):
    """libopus could not be loaded."""


@dataclass(frozen=True)
class OpusProfile:
    application: Application
    min_bps: int
    max_bps: int
    start_bps: int
    fec: bool = True
    dtx: bool = False
    complexity: int = 9
    max_loss_percent: int = 30  # FEC sized for up to this much loss
    frame_ms: int = 40  # per packet: 20, 40 or 60 (see `AdaptiveOpusEncoder.encode`)
    max_bandwidth: Bandwidth = "fullband"


STETHOSCOPE: Final = OpusProfile("audio", min_bps=24_000, max_bps=64_000, start_bps=48_000)
VOICE: Final = OpusProfile(
    "voip", min_bps=8_000, max_bps=16_000, start_bps=16_000, max_bandwidth="wideband"
)
PROFILES: Final[dict[str, OpusProfile]] = {"stethoscope": STETHOSCOPE, "voice": VOICE}


@cache
def libopus() -> ctypes.CDLL:
    path = _library_path("opus")
    if path is None:
        raise LibopusUnavailable("libopus not found next to PyAV or on the system")
    lib = ctypes.CDLL(path)
    lib.opus_encoder_create.restype = ctypes.c_void_p
    lib.opus_encoder_create.argtypes = [
        ctypes.c_int32,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.POINTER(ctypes.c_int),
    ]
    lib.opus_encoder_destroy.argtypes = [ctypes.c_void_p]
    lib.opus_encode.argtypes = [
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_int32,
    ]
    lib.opus_packet_has_lbrr.argtypes = [ctypes.c_char_p, ctypes.c_int32]
    return lib


class LibopusEncoder:
    """One libopus encoder, mono 48 kHz, whose settings can change between frames."""

    def __init__(self, profile: OpusProfile) -> None:
        self._lib = libopus()
        self._state: int | None = None
        error = ctypes.c_int()
        state = self._lib.opus_encoder_create(
            SAMPLE_RATE, 1, _APPLICATIONS[profile.application], ctypes.byref(error)
        )
        if not state or error.value != 0:
            raise LibopusUnavailable(f"opus_encoder_create failed ({error.value})")
        self._state = state
        self.profile = profile
        self._buffer = ctypes.create_string_buffer(MAX_PACKET)
        self._set(_SET_VBR, 1)
        self._set(_SET_COMPLEXITY, profile.complexity)
        self._set(_SET_INBAND_FEC, 1 if profile.fec else 0)
        self._set(_SET_DTX, 1 if profile.dtx else 0)
        self._set(_SET_MAX_BANDWIDTH, _BANDWIDTHS[profile.max_bandwidth])
        self._set(_SET_BITRATE, profile.start_bps)
        self._set(_SET_PACKET_LOSS_PERC, 0)

    def _set(self, request: int, value: int) -> None:
        res = self._lib.opus_encoder_ctl(
            ctypes.c_void_p(self._state), ctypes.c_int(request), ctypes.c_int(value)
        )
        if res != 0:
            raise ValueError(f"opus_encoder_ctl({request}, {value}) failed ({res})")

    def get(self, request: int) -> int:
        value = ctypes.c_int32()
        self._lib.opus_encoder_ctl(
            ctypes.c_void_p(self._state), ctypes.c_int(request), ctypes.byref(value)
        )
        return value.value

    @property
    def bitrate_bps(self) -> int:
        return self.get(_GET_BITRATE)

    @property
    def fec(self) -> bool:
        return bool(self.get(_GET_INBAND_FEC))

    @property
    def dtx(self) -> bool:
        return bool(self.get(_GET_DTX))

    @property
    def max_bandwidth(self) -> Bandwidth:
        value = self.get(_GET_MAX_BANDWIDTH)
        return next(name for name, code in _BANDWIDTHS.items() if code == value)

    @property
    def packet_loss_percent(self) -> int:
        return self.get(_GET_PACKET_LOSS_PERC)

    @property
    def application(self) -> Application:
        return "audio" if self.get(_GET_APPLICATION) == _APPLICATIONS["audio"] else "voip"

    def set_bitrate(self, bitrate_bps: int) -> None:
        self._set(_SET_BITRATE, min(max(bitrate_bps, self.profile.min_bps), self.profile.max_bps))

    def set_packet_loss(self, fraction: float) -> None:
        percent = min(self.profile.max_loss_percent, math.ceil(max(fraction, 0.0) * 100))
        self._set(_SET_PACKET_LOSS_PERC, percent)

    def encode(self, pcm: np.ndarray[Any, Any]) -> bytes:
        samples = np.ascontiguousarray(pcm, dtype=np.int16)
        n = self._lib.opus_encode(
            ctypes.c_void_p(self._state),
            samples.ctypes.data,
            len(samples),
            self._buffer,
            MAX_PACKET,
        )
        if n < 0:
            raise RuntimeError(f"opus_encode failed ({n})")
        return self._buffer.raw[:n]

    def close(self) -> None:
        if self._state is not None:
            self._lib.opus_encoder_destroy(ctypes.c_void_p(self._state))
            self._state = None

    def __del__(self) -> None:
        self.close()


def has_fec_data(packet: bytes) -> bool:
    """Whether an Opus packet carries in-band FEC (LBRR) for the previous frame."""
    return bool(libopus().opus_packet_has_lbrr(packet, len(packet)) > 0)


class AdaptiveOpusEncoder(Encoder):
    """aiortc's Opus encoder interface: mono, per-role profile, rate and FEC adapt live."""

    def __init__(self, profile: OpusProfile = VOICE) -> None:
        self._lock = threading.Lock()
        self._opus = LibopusEncoder(profile)
        self._encoded_any = False
        self._pending_profile: OpusProfile | None = None
        self._bitrate_bps = profile.start_bps
        self._loss = 0.0
        self.red: RedPacker | None = None  # set once RED is negotiated (`peer.py`)
        self._dirty = False
        self.resampler = AudioResampler(
            format="s16", layout="mono", rate=SAMPLE_RATE, frame_size=FRAME_SAMPLES
        )
        self.first_pts: int | None = None
        self._pending: list[np.ndarray[Any, Any]] = []
        self._pending_pts: int | None = None
        self._frame_ms: int | None = None  # None: the profile's

    @property
    def profile(self) -> OpusProfile:
        return self._pending_profile or self._opus.profile

    @property
    def libopus(self) -> LibopusEncoder:
        return self._opus

    def use_profile(self, profile: OpusProfile) -> None:
        """Switch role; before the first frame this is free, later it starts a new stream
        state (a one-off 20 ms discontinuity), since libopus fixes the application."""
        with self._lock:
            if profile != self._opus.profile:
                self._pending_profile = profile
                self._bitrate_bps = profile.start_bps
                self._dirty = True

    def set_bitrate(self, bitrate_bps: int) -> None:
        with self._lock:
            self._bitrate_bps = bitrate_bps
            self._dirty = True

    def set_packet_loss(self, fraction: float) -> None:
        with self._lock:
            self._loss = fraction
            self._dirty = True

    def set_frame_ms(self, frame_ms: int | None) -> None:
        """Audio per packet from the next packet on (None: the profile's): 60 ms on thin
        links saves a third of the packets' 60-byte overhead."""
        with self._lock:
            self._frame_ms = frame_ms

    def set_copies(self, copies: int) -> None:
        """How many times each frame goes out when RED is negotiated (2: every packet
        repeats the last frame; 1: each frame once)."""
        red = self.red
        if red is not None:
            red.distance = max(copies - 1, 0)

    @property
    def frame_ms(self) -> int:
        return self._frame_ms or self.profile.frame_ms

    def _apply(self) -> None:
        with self._lock:
            if not self._dirty:
                return
            profile, self._pending_profile = self._pending_profile, None
            bitrate, loss = self._bitrate_bps, self._loss
            self._dirty = False
        if profile is not None:
            self._opus.close()
            self._opus = LibopusEncoder(profile)
        self._opus.set_bitrate(bitrate)
        self._opus.set_packet_loss(loss)

    def encode(self, frame: Frame, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        assert isinstance(frame, AudioFrame)
        self._apply()
        for chunk in self.resampler.resample(frame):
            if chunk.pts is not None and self._pending_pts is None:
                if self.first_pts is None:
                    self.first_pts = chunk.pts
                self._pending_pts = chunk.pts - self.first_pts
            self._pending.append(chunk.to_ndarray().reshape(-1))
        # One packet per `frame_ms` (40 ms halves the 60-byte packet overhead, 12 kbit/s a
        # track); several chunks at once (a late source) go out as one longer Opus
        # frame, since aiortc gives every payload of one call the same RTP timestamp.
        frame_samples = SAMPLE_RATE * self.frame_ms // 1000
        if sum(part.size for part in self._pending) < frame_samples:
            return [], 0
        pcm = np.concatenate(self._pending)[: FRAME_SAMPLES * 6]
        timestamp = self._pending_pts or 0
        self._pending, self._pending_pts = [], None
        payload = self._opus.encode(pcm)
        red = self.red
        return [red.pack(payload, timestamp) if red is not None else payload], timestamp

    def pack(self, packet: Packet[Any]) -> tuple[list[bytes], int]:
        timestamp = convert_timebase(packet.pts or 0, packet.time_base or TIME_BASE, TIME_BASE)
        return [bytes(packet)], timestamp


def install_opus_settings() -> bool:
    """Make every Opus sender use `AdaptiveOpusEncoder` (voice profile until the rate
    controller, which knows the roles, switches the stethoscope's). Call once at start-up."""
    try:
        libopus()
    except (LibopusUnavailable, OSError) as exc:
        log.error("Opus tuning unavailable, using aiortc's encoder: %s", exc)
        return False
    return register_encoder("audio/opus", lambda codec: AdaptiveOpusEncoder()) and register_encoder(
        "audio/red", red_sender_encoder
    )


def red_sender_encoder(codec: RTCRtpCodecParameters) -> AdaptiveOpusEncoder:
    """For a sender whose negotiated codec is RED without a prepared encoder (an aiortc
    peer answering the cart's offer): Opus in RED."""
    encoder = AdaptiveOpusEncoder()
    encoder.red = RedPacker(red_primary_payload_type(codec))
    return encoder


def prepare_audio_sender(sender: object, role: str) -> AdaptiveOpusEncoder:
    """Give an Opus sender its role's encoder before its first frame (no switch later).

    Use only once Opus is the negotiated codec (the agent offers only Opus).
    """
    encoder = AdaptiveOpusEncoder(PROFILES.get(role, VOICE))
    setattr(sender, "_RTCRtpSender__encoder", encoder)  # noqa: B010 - aiortc's lazy slot
    return encoder
