"""Codec choices for the cart's senders: VP8 video, Opus audio, and the Opus encoder seam.

aiortc's Opus encoder upmixes our mono sources to stereo and encodes at 96 kbit/s in the
"voip" application, which cuts the lowest heart-sound bands (see
shared/REFERENCE-LINKS.md). `OpusSettings` names those choices per audio role so the
codec-tuning issue can change them in one place; `install_opus_encoder` pre-creates
the sender's encoder with them (aiortc otherwise builds its default lazily).
"""

from __future__ import annotations

from dataclasses import dataclass

from aiortc import RTCRtpSender, RTCRtpTransceiver
from aiortc.codecs.opus import OpusEncoder


@dataclass(frozen=True)
class OpusSettings:
    application: str = "voip"  # libopus: "voip", "audio" or "lowdelay"
    bitrate: int = 96_000


def opus_settings(role: str) -> OpusSettings:
    """Encoder settings for an audio track role ("stethoscope" or "voice").

    Both are aiortc's defaults for now; the codec-tuning issue sets the stethoscope to
    the "audio" application.
    """
    del role
    return OpusSettings()


def prefer_codec(transceiver: RTCRtpTransceiver, mime_type: str) -> None:
    """Offer only `mime_type` (and its RTX) on `transceiver`."""
    kind = transceiver.kind
    capabilities = RTCRtpSender.getCapabilities(kind)
    chosen = [
        c for c in capabilities.codecs if c.mimeType.lower() in (mime_type.lower(), f"{kind}/rtx")
    ]
    transceiver.setCodecPreferences(chosen)


def install_opus_encoder(sender: RTCRtpSender, settings: OpusSettings) -> None:
    """Give `sender` an Opus encoder built with `settings` before its first frame."""
    encoder = OpusEncoder()
    encoder.codec.bit_rate = settings.bitrate
    encoder.codec.options = {"application": settings.application}
    # aiortc keeps the encoder in a private slot and only creates one when it is empty.
    setattr(sender, "_RTCRtpSender__encoder", encoder)  # noqa: B010
