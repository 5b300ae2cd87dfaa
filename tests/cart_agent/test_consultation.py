"""A full consultation between the cart agent and an aiortc specialist, on loopback."""

from __future__ import annotations

import hashlib

from telecart.signalling.session_state import SessionState
from tests.cart_agent.conftest import EXAM_SIZE, ROOM_SIZE, STILL_SIZE, Consult, eventually


async def test_both_videos_decode_at_their_camera_size(live: Consult) -> None:
    received = live.specialist.received
    await eventually(
        lambda: (
            received.video_frames.get("room", 0) >= 10
            and received.video_frames.get("exam", 0) >= 10
        ),
        what="10 decoded frames on both video tracks",
    )
    # The rate controller starts low (300 kbit/s) and scales up as the link allows, so
    # the first frames may be smaller; the cameras' own sizes come once it has probed up.
    sizes = received.video_sizes
    await eventually(
        lambda: ROOM_SIZE in sizes["room"] and EXAM_SIZE in sizes["exam"],
        timeout_s=40.0,
        what="both videos at their camera size",
    )
    assert max(sizes["room"]) <= ROOM_SIZE and max(sizes["exam"]) <= EXAM_SIZE


async def test_stethoscope_and_voice_arrive_as_separate_non_silent_tracks(live: Consult) -> None:
    received = live.specialist.received
    await eventually(
        lambda: (
            received.audio_peak.get("stethoscope", 0) > 1000
            and received.audio_peak.get("voice", 0) > 1000
        ),
        what="audio on both tracks",
    )
    # Both go as RED (each packet repeats the last frame), and the aiortc specialist
    # decodes both.
    consultation = live.agent.consultation
    assert consultation is not None
    assert consultation.peer.uses_red("stethoscope") and consultation.peer.uses_red("voice")


async def test_vitals_arrive_in_order_without_gaps(live: Consult) -> None:
    received = live.specialist.received
    await eventually(
        lambda: (
            len(received.vitals) >= 6
            and {"spo2", "bp_systolic"} <= {v["kind"] for v in received.vitals}
        ),
        what="oximeter and blood-pressure readings",
    )
    seqs = [v["seq"] for v in received.vitals]
    assert seqs == list(range(1, len(seqs) + 1))
    for reading in received.vitals:
        assert reading["captured_at"] > 0 and reading["unit"]


async def test_still_arrives_byte_identical_and_is_stored_on_the_server(live: Consult) -> None:
    specialist = live.specialist
    received = specialist.received
    await eventually(
        lambda: specialist.control is not None and specialist.control.readyState == "open"
    )
    specialist.command({"type": "request_still", "id": 1})
    await eventually(lambda: received.stills and received.stills[0].stored, what="the still")
    still = received.stills[0]
    sent = live.agent.consultation.stills_sent[0] if live.agent.consultation else None
    assert sent is not None and still.data == sent.data
    assert still.sha256 == still.header["sha256"] == hashlib.sha256(sent.data).hexdigest()
    assert (still.header["width"], still.header["height"]) == STILL_SIZE
    assert len(still.data) == still.header["size"] > 16 * 1024  # really went in chunks
    assert still.stored is not None
    status, body = await specialist.fetch(still.stored["url"])
    assert status == 200 and body == still.data
    assert {"type": "ack", "id": 1, "ok": True, "message": ""} in received.events


async def test_control_commands_change_the_cart(live: Consult) -> None:
    specialist = live.specialist
    await eventually(
        lambda: specialist.control is not None and specialist.control.readyState == "open"
    )
    specialist.command({"type": "set_stethoscope_mode", "mode": "lung", "id": "m"})
    specialist.command({"type": "mute", "track": "voice", "muted": True, "id": "v"})
    specialist.command({"type": "switch_camera", "track": "room", "camera": "exam", "id": "s"})
    specialist.command({"type": "set_stethoscope_mode", "mode": "bell", "id": "bad"})
    events = specialist.received.events
    await eventually(lambda: sum(e.get("type") == "ack" for e in events) >= 4, what="4 acks")
    acks = {e["id"]: e for e in events if e.get("type") == "ack"}
    assert acks["m"]["ok"] and acks["v"]["ok"] and acks["s"]["ok"]
    assert not acks["bad"]["ok"] and "heart" in acks["bad"]["message"]
    devices = live.agent.devices
    assert devices.audio_inputs["stethoscope"].mode == "lung"
    consultation = live.agent.consultation
    assert consultation is not None
    assert consultation.tracks.voice.muted
    assert consultation.tracks.room.source is devices.cameras["exam"]
    assert consultation.tracks.exam.source is devices.cameras["room"]
    roles = next(e for e in events if e.get("type") == "track_roles")["roles"]
    assert sorted(roles.values()) == ["exam", "room", "stethoscope", "voice"]


async def test_specialist_voice_plays_on_the_cart_speaker(live: Consult) -> None:
    await eventually(
        lambda: (
            live.agent.consultation is not None
            and live.agent.consultation.remote_audio is not None
            and live.agent.consultation.remote_audio.chunks_played > 25
        ),
        what="the specialist's voice on the speaker",
    )
    speaker = live.agent.devices.speaker
    assert speaker is not None and speaker.peak > 1000
    consultation = live.agent.consultation
    assert consultation is not None and consultation.remote_video is not None
    await eventually(lambda: consultation.remote_video is not None
                     and consultation.remote_video.frames_received > 5)  # fmt: skip


async def test_hangup_by_specialist_ends_it_everywhere(live: Consult) -> None:
    session_id = live.specialist.session.session_id if live.specialist.session else ""
    await live.specialist.hangup()
    await live.specialist.wait_state("ended")
    await eventually(
        lambda: (
            live.agent.session is not None
            and live.agent.session.state is SessionState.ENDED
            and live.agent.consultation is None
        ),
        what="the cart to end the session",
    )
    record = await live.server.store.session(session_id)
    assert record is not None and record.state is SessionState.ENDED


async def test_hangup_by_cart_ends_it_everywhere(live: Consult) -> None:
    session_id = live.specialist.session.session_id if live.specialist.session else ""
    await live.agent.hangup()
    await live.specialist.wait_state("ended")
    await eventually(lambda: live.agent.consultation is None, what="the cart to close media")
    record = await live.server.store.session(session_id)
    assert record is not None and record.state is SessionState.ENDED
