"""Codec choices for the cart's senders: VP8 video and Opus audio, nothing else.

Offering one codec per kind keeps every sender on the encoders the rate controller
drives (`encoder_control.AdaptiveVp8Encoder`, `opus_settings.AdaptiveOpusEncoder`).
"""

from __future__ import annotations

from aiortc import RTCRtpSender, RTCRtpTransceiver


def prefer_codec(transceiver: RTCRtpTransceiver, *mime_types: str) -> None:
    """Offer only `mime_types`, in this order (and RTX for video), on `transceiver`."""
    kind = transceiver.kind
    capabilities = RTCRtpSender.getCapabilities(kind).codecs
    chosen = [c for m in mime_types for c in capabilities if c.mimeType.lower() == m.lower()]
    chosen += [c for c in capabilities if c.mimeType.lower() == f"{kind}/rtx"]
    transceiver.setCodecPreferences(chosen)
