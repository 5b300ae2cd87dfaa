"""One RTCPeerConnection for one consultation: the cart's media layout, offer, ICE.

Layout (m-line order, which the specialist page also relies on):

====  =========  ==========  =========================================
mid   kind       direction   carries
====  =========  ==========  =========================================
0     video      sendrecv    room camera out, specialist's camera in
1     video      sendonly    exam camera
2     audio      sendonly    stethoscope
3     audio      sendrecv    nurse's voice out, specialist's voice in
====  =========  ==========  =========================================

plus the data channels `vitals`, `control` and `stills` (all reliable and ordered).
The cart always offers; aiortc gathers every candidate before `setLocalDescription`
returns, so the offer is complete and the cart never trickles. The specialist's
trickled candidates are added as they come.

Every peer runs on the adapted media stack (docs/adaptation.md): `prepare_media_stack`
puts our VP8 and Opus encoders, transport-wide feedback and the long-RTT consent check
into aiortc/aioice before
the connection exists, and each audio sender gets its role's Opus profile up front.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamTrack
from aiortc.sdp import candidate_from_sdp

from telecart.cart_agent.codecs import prefer_codec
from telecart.cart_agent.control_channel import CONTROL_LABEL
from telecart.cart_agent.encoder_control import install_encoder_control
from telecart.cart_agent.ice_consent import install_consent_fix
from telecart.cart_agent.nack_retry import install_nack_retry
from telecart.cart_agent.opus_red import RED_MIME, install_opus_red, red_packer
from telecart.cart_agent.opus_settings import (
    AdaptiveOpusEncoder,
    install_opus_settings,
    prepare_audio_sender,
)
from telecart.cart_agent.quality_ladder import TrackRole
from telecart.cart_agent.sctp_timers import tune_sctp_timers
from telecart.cart_agent.stills import STILLS_LABEL
from telecart.cart_agent.tracks import CameraTrack, DeviceAudioTrack
from telecart.cart_agent.transport_cc import install_transport_cc
from telecart.cart_agent.video_fec import (
    RED_VIDEO_MIME,
    ULPFEC_MIME,
    FecPayloadTypes,
    install_video_fec,
    negotiated_fec,
)
from telecart.cart_agent.vitals_channel import VITALS_LABEL

log = logging.getLogger(__name__)

VIDEO_CODEC = "video/VP8"
AUDIO_CODEC = "audio/opus"


@dataclass(frozen=True)
class OutgoingTracks:
    room: CameraTrack
    exam: CameraTrack
    stethoscope: DeviceAudioTrack
    voice: DeviceAudioTrack


@dataclass(frozen=True)
class DataChannels:
    vitals: RTCDataChannel
    control: RTCDataChannel
    stills: RTCDataChannel


@dataclass(frozen=True)
class MediaStack:
    """Which of our replacements for aiortc/aioice defaults are in force."""

    vp8_rate_control: bool
    opus_profiles: bool
    consent_fix: bool
    transport_feedback: bool
    audio_red: bool
    nack_retry: bool
    video_fec: bool


def prepare_media_stack() -> MediaStack:
    """Install our VP8/Opus encoders, consent check and NACK retries (idempotent).

    Each piece falls back to the library's own behaviour, with an error logged, if the
    library has changed shape; the call still goes ahead.
    """
    return MediaStack(
        install_encoder_control(),
        install_opus_settings(),
        install_consent_fix(),
        install_transport_cc(),
        install_opus_red(),
        install_nack_retry(),
        install_video_fec(),
    )


def ice_servers_from_json(entries: list[dict[str, object]]) -> list[RTCIceServer]:
    """`/api/turn`'s `iceServers` as aiortc objects (an empty list means host candidates
    only; aiortc's own default would be a public STUN server, which carts must not use)."""
    servers = []
    for entry in entries:
        urls = entry.get("urls")
        username = entry.get("username")
        credential = entry.get("credential")
        if isinstance(urls, str):
            urls = [urls]
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            continue
        servers.append(
            RTCIceServer(
                urls=list(urls),
                username=username if isinstance(username, str) else None,
                credential=credential if isinstance(credential, str) else None,
            )
        )
    return servers


class CartPeer:
    """The cart's side of one consultation's WebRTC connection."""

    def __init__(
        self,
        ice_servers: list[RTCIceServer],
        tracks: OutgoingTracks,
        on_remote_track: Callable[[str, MediaStreamTrack], None],
        on_connection_state: Callable[[str], None],
    ) -> None:
        self.media_stack = prepare_media_stack()
        # max-bundle: one transport for everything. With aiortc's default ("balanced"), a
        # second m-line of a kind rides on the first one's transport, which bundling then
        # discards, and that track never flows.
        self.pc = RTCPeerConnection(
            RTCConfiguration(iceServers=list(ice_servers), bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
        self.tracks = tracks
        self._roles: dict[RTCRtpTransceiver, TrackRole] = {}
        self._audio_encoders: dict[TrackRole, AdaptiveOpusEncoder] = {}
        self._fec_types: dict[TrackRole, FecPayloadTypes] = {}
        video_room = self.pc.addTransceiver(tracks.room, direction="sendrecv")
        video_exam = self.pc.addTransceiver(tracks.exam, direction="sendonly")
        stethoscope = self.pc.addTransceiver(tracks.stethoscope, direction="sendonly")
        voice = self.pc.addTransceiver(tracks.voice, direction="sendrecv")
        layout: tuple[tuple[RTCRtpTransceiver, TrackRole], ...] = (
            (video_room, "room"),
            (video_exam, "exam"),
            (stethoscope, "stethoscope"),
            (voice, "voice"),
        )
        self._roles.update(layout)
        # The exam camera offers FEC (`video_fec.py`); Chrome takes it apart itself. Not
        # the room camera's m-line: it also carries the specialist's camera to the cart,
        # which Chrome then protected with FEC packets aiortc cannot use (with them in
        # its jitter buffer it failed to decode ~300 frames a minute on `satellite`).
        fec = (RED_VIDEO_MIME, ULPFEC_MIME) if self.media_stack.video_fec else ()
        prefer_codec(video_room, VIDEO_CODEC)
        prefer_codec(video_exam, VIDEO_CODEC, *fec)
        for transceiver, role in layout[2:]:
            # RED needs our encoders to pack it: without them only Opus is offered.
            red = self.media_stack.audio_red and self.media_stack.opus_profiles
            prefer_codec(transceiver, *((RED_MIME,) if red else ()), AUDIO_CODEC)
            if self.media_stack.opus_profiles:
                # Only Opus (in RED or not) is offered: the role's encoder is right from
                # the first frame; `accept_answer` turns RED on if the answer took it.
                self._audio_encoders[role] = prepare_audio_sender(transceiver.sender, role)
        self.channels = DataChannels(
            vitals=self.pc.createDataChannel(VITALS_LABEL, ordered=True),
            control=self.pc.createDataChannel(CONTROL_LABEL, ordered=True),
            stills=self.pc.createDataChannel(STILLS_LABEL, ordered=True),
        )
        if self.pc.sctp is not None:  # set by the channels above
            tune_sctp_timers(self.pc.sctp)
        self._on_remote_track = on_remote_track

        @self.pc.on("track")
        def _track(track: MediaStreamTrack) -> None:
            role = next(
                (r for t, r in self._roles.items() if t.receiver.track is track), track.kind
            )
            on_remote_track(role, track)

        @self.pc.on("connectionstatechange")
        def _state() -> None:
            on_connection_state(self.pc.connectionState)

    def senders(self) -> dict[TrackRole, RTCRtpSender]:
        """role → sender, for the rate controller."""
        return {role: t.sender for t, role in self._roles.items()}

    def track_roles(self) -> dict[str, str]:
        """mid → role, for the specialist page (valid after `create_offer`)."""
        return {t.mid: role for t, role in self._roles.items() if t.mid is not None}

    async def create_offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def accept_answer(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        for transceiver, role in self._roles.items():
            encoder = self._audio_encoders.get(role)
            if encoder is not None:
                encoder.red = red_packer(transceiver._codecs)
            fec = negotiated_fec(transceiver._codecs) if transceiver.kind == "video" else None
            if fec is not None:
                self._fec_types[role] = fec

    def fec_payload_types(self) -> dict[TrackRole, FecPayloadTypes]:
        """Video roles whose answer took RED and ULPFEC (valid after `accept_answer`)."""
        return dict(self._fec_types)

    def uses_red(self, role: TrackRole) -> bool:
        """Whether the answer took RED for this audio track (valid after `accept_answer`)."""
        encoder = self._audio_encoders.get(role)
        return encoder is not None and encoder.red is not None

    async def add_candidate(
        self, candidate: str, sdp_mid: str | None, sdp_mline_index: int | None
    ) -> None:
        if not candidate:
            await self.pc.addIceCandidate(None)
            return
        ice = candidate_from_sdp(candidate.removeprefix("candidate:"))
        ice.sdpMid = sdp_mid
        ice.sdpMLineIndex = sdp_mline_index
        await self.pc.addIceCandidate(ice)

    async def close(self) -> None:
        await self.pc.close()
