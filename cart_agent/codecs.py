"""Codec choices for the cart's senders: VP8 video and Opus audio, nothing else.

Offering one codec per kind keeps every sender on the encoders the rate controller
drives (`encoder_control.AdaptiveVp8Encoder`, `opus_settings.AdaptiveOpusEncoder`).
"""

from __future__ import annotations

from aiortc import RTCRtpSender, RTCRtpTransceiver


def prefer_codec(transceiver: RTCRtpTransceiver, mime_type: str) -> None:
    """Offer only `mime_type` (and its RTX) on `transceiver`."""
    kind = transceiver.kind
    capabilities = RTCRtpSender.getCapabilities(kind)
    chosen = [
        c for c in capabilities.codecs if c.mimeType.lower() in (mime_type.lower(), f"{kind}/rtx")
    ]
    transceiver.setCodecPreferences(chosen)
