"""Loopback: the specialist loses media; the cart offers again on the same session and
delivers every vital and still, once."""

from __future__ import annotations

from tests.cart_agent.conftest import Consult, eventually


async def test_lost_media_is_renegotiated_on_the_same_session_with_nothing_lost(
    reliable: Consult,
) -> None:
    agent, specialist = reliable.agent, reliable.specialist
    session_id = specialist.session.session_id if specialist.session else None
    await eventually(lambda: specialist.vitals_seen >= 3, what="first vitals")
    first = agent.consultation
    assert specialist.pc is not None and first is not None
    await specialist.pc.close()  # the page lost its connection (reload, crash)
    await eventually(lambda: first.link_state != "connected", what="loss detected")
    still = await first.take_still("exam")  # taken while nothing reaches the specialist
    await eventually(
        lambda: agent.consultation is not first and specialist.offers >= 2, what="new offer"
    )
    await specialist.wait_state("live", timeout_s=30)
    assert specialist.session is not None and specialist.session.session_id == session_id
    await eventually(lambda: still.still_id in specialist.still_ids, what="the still")
    outbox = agent.outbox
    assert outbox is not None
    await eventually(lambda: outbox.stills.stored.get(still.still_id), what="still stored")
    await eventually(
        lambda: outbox.vitals.buffer.acked == outbox.vitals.buffer.last_seq > 3,
        what="every vital acknowledged",
    )
    seqs = [v["seq"] for v in specialist.received.vitals]
    assert seqs == list(range(1, outbox.vitals.buffer.last_seq + 1))
    assert specialist.gaps == 0
    received = [s for s in specialist.received.stills if s.header["still_id"] == still.still_id]
    assert len(received) == 1 and received[0].sha256 == still.sha256


async def test_a_reupload_of_the_same_still_is_stored_once(reliable: Consult) -> None:
    agent = reliable.agent
    consultation = agent.consultation
    assert consultation is not None and agent.outbox is not None
    still = await consultation.take_still("exam")
    outbox = agent.outbox
    await eventually(lambda: still.still_id in outbox.stills.stored, what="stored")
    again = await agent._upload(consultation.session_id, still)
    assert again["still_id"] == outbox.stills.stored[still.still_id]["still_id"]
    assert len(await reliable.server.store.stills(consultation.session_id)) == 1
