"""Stethoscope Opus: flat down to 20 Hz, FEC fed from loss reports, no DTX, adaptive rate."""

from __future__ import annotations

import fractions
import itertools

import numpy as np
import numpy.typing as npt
import pytest
from aiortc.codecs.base import Encoder
from aiortc.codecs.opus import OpusDecoder, OpusEncoder
from aiortc.jitterbuffer import JitterFrame
from av import AudioFrame

from telecart.cart_agent.opus_settings import (
    STETHOSCOPE,
    VOICE,
    AdaptiveOpusEncoder,
    has_fec_data,
)
from telecart.cart_agent.quality_ladder import VOICE_LEVELS

RATE = 48_000


def tone(freq: float, seconds: float = 3.0, level: float = 0.3) -> npt.NDArray[np.int16]:
    t = np.arange(int(RATE * seconds)) / RATE
    return (level * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def heart_like(seconds: float = 3.0) -> npt.NDArray[np.int16]:
    """Bursts of 40-80 Hz at 72 bpm over faint noise: SILK sees it as active."""
    t = np.arange(int(RATE * seconds)) / RATE
    beat = np.exp(-((((t % (60 / 72)) - 0.05) / 0.03) ** 2))
    signal = beat * (np.sin(2 * np.pi * 50 * t) + 0.5 * np.sin(2 * np.pi * 80 * t))
    noise = np.random.default_rng(1).normal(0, 0.02, len(t))
    return (0.4 * 32767 * (signal * 0.6 + noise)).astype(np.int16)


def frames(samples: npt.NDArray[np.int16]) -> list[AudioFrame]:
    out = []
    for start in range(0, len(samples) - 959, 960):
        frame = AudioFrame.from_ndarray(
            samples[start : start + 960].reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = RATE
        frame.pts = start
        frame.time_base = fractions.Fraction(1, RATE)
        out.append(frame)
    return out


def encode_all(encoder: Encoder, samples: npt.NDArray[np.int16]) -> list[tuple[bytes, int]]:
    packets = []
    for frame in frames(samples):
        payloads, timestamp = encoder.encode(frame)
        packets += [(p, timestamp) for p in payloads]
    return packets


def level_change_db(encoder: Encoder, samples: npt.NDArray[np.int16]) -> float:
    """Received minus sent level, through aiortc's own decoder (what a receiver does)."""
    decoder = OpusDecoder()
    decoded = []
    for payload, timestamp in encode_all(encoder, samples):
        for frame in decoder.decode(JitterFrame(data=payload, timestamp=timestamp)):
            assert isinstance(frame, AudioFrame)
            decoded.append(frame.to_ndarray().reshape(-1, 2)[:, 0])
    received = np.concatenate(decoded).astype(np.float64)[RATE:]
    sent = samples[RATE : RATE + len(received)].astype(np.float64)
    return float(20 * np.log10(np.sqrt(np.mean(received**2)) / np.sqrt(np.mean(sent**2))))


def stethoscope_encoder(loss: float = 0.05) -> AdaptiveOpusEncoder:
    encoder = AdaptiveOpusEncoder(STETHOSCOPE)
    encoder.set_packet_loss(loss)
    return encoder


@pytest.mark.parametrize("freq", [20, 30, 60, 100, 1000])
def test_stethoscope_passes_heart_sound_band_within_3_db(freq: int) -> None:
    assert abs(level_change_db(stethoscope_encoder(), tone(freq))) < 3.0


@pytest.mark.parametrize("freq", [24_000, 64_000])
def test_low_tones_pass_at_both_ends_of_the_rate_range(freq: int) -> None:
    encoder = stethoscope_encoder()
    encoder.set_bitrate(freq)
    for hz in (30, 60):
        assert abs(level_change_db(encoder, tone(hz))) < 3.0


def test_aiortc_stock_encoder_loses_the_lowest_heart_sounds() -> None:
    assert level_change_db(OpusEncoder(), tone(30)) < -10.0


def test_stethoscope_profile_is_audio_mono_fec_no_dtx() -> None:
    encoder = stethoscope_encoder()
    encode_all(encoder, tone(60, 0.2))
    opus = encoder.libopus
    assert opus.application == "audio"
    assert opus.fec and not opus.dtx
    assert opus.packet_loss_percent == 5
    assert (STETHOSCOPE.min_bps, STETHOSCOPE.max_bps) == (24_000, 64_000)
    assert VOICE.application == "voip" and VOICE.max_bps < STETHOSCOPE.min_bps * 2


def test_fec_data_appears_once_loss_is_reported() -> None:
    quiet = stethoscope_encoder(loss=0.0)
    lossy = stethoscope_encoder(loss=0.10)
    without = sum(has_fec_data(p) for p, _ in encode_all(quiet, heart_like()))
    with_fec = sum(has_fec_data(p) for p, _ in encode_all(lossy, heart_like()))
    assert without == 0
    assert with_fec > 10  # of 75 packets (40 ms); CELT-coded frames carry none


def test_silence_still_sends_every_frame_without_dtx() -> None:
    packets = encode_all(stethoscope_encoder(), np.zeros(RATE, np.int16))
    assert len(packets) == 25  # 40 ms frames
    assert all(len(p) >= 3 for p, _ in packets)


def test_bitrate_adapts_within_the_profile_range() -> None:
    low, high = stethoscope_encoder(), stethoscope_encoder()
    low.set_bitrate(10_000)  # below the floor: held at 24 kbit/s
    high.set_bitrate(64_000)
    low_bytes = sum(len(p) for p, _ in encode_all(low, heart_like()))
    high_bytes = sum(len(p) for p, _ in encode_all(high, heart_like()))
    assert low.libopus.bitrate_bps == 24_000
    assert high_bytes > low_bytes * 1.5


def speech_like(seconds: float = 4.0) -> npt.NDArray[np.int16]:
    """A 140 Hz voice with 14 harmonics, three syllables a second, over faint noise."""
    t = np.arange(int(RATE * seconds)) / RATE
    voiced = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 15))
    syllables = (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)) ** 2
    signal = voiced * syllables / np.abs(voiced * syllables).max()
    noise = np.random.default_rng(2).normal(0, 0.01, len(t))
    return (0.35 * 32767 * (signal + noise)).astype(np.int16)


def test_the_voice_stays_at_its_ladder_rates_where_libopus_gives_speech_no_fec() -> None:
    # Why the voice goes as RED (opus_red.py): at its rates libopus codes speech as
    # wideband SILK with no in-band FEC whatever the loss, so a repeat is its only cover.
    for level in VOICE_LEVELS:
        encoder = AdaptiveOpusEncoder(VOICE)
        encoder.set_bitrate(level.bitrate_bps)
        encoder.set_packet_loss(0.05)
        packets = encode_all(encoder, speech_like())
        assert encoder.libopus.bitrate_bps == level.bitrate_bps
        assert encoder.libopus.max_bandwidth == "wideband"
        assert sum(has_fec_data(p) for p, _ in packets) == 0
    capped = AdaptiveOpusEncoder(VOICE)
    capped.set_bitrate(32_000)
    encode_all(capped, speech_like(0.2))
    assert capped.libopus.bitrate_bps == VOICE.max_bps == VOICE_LEVELS[0].bitrate_bps


def test_switching_to_the_stethoscope_profile_changes_application() -> None:
    encoder = AdaptiveOpusEncoder(VOICE)
    encode_all(encoder, tone(60, 0.1))
    assert encoder.libopus.application == "voip"
    encoder.use_profile(STETHOSCOPE)
    assert abs(level_change_db(encoder, tone(30))) < 3.0
    assert encoder.libopus.application == "audio"


def test_thin_rates_send_60_ms_packets_a_decoder_plays_whole() -> None:
    encoder = stethoscope_encoder()
    encoder.set_frame_ms(60)
    packets = encode_all(encoder, heart_like(seconds=1.2))
    assert len(packets) == 20  # 1.2 s in 60 ms packets (40 ms would be 30)
    steps = {b - a for (_, a), (_, b) in itertools.pairwise(packets)}
    assert steps == {2880}  # RTP timestamps 60 ms apart
    decoder = OpusDecoder()
    decoded = [decoder.decode(JitterFrame(p, t)) for p, t in packets]
    assert all(sum(f.samples for f in frames) == 2880 for frames in decoded)
    encoder.set_frame_ms(None)  # back to the profile's 40 ms
    assert len(encode_all(encoder, heart_like(seconds=1.2))) == 30
