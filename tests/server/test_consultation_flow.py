"""Request, queue, race-safe accept, relay within a session, hangup."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from telecart.signalling.client import SignallingClient
from telecart.signalling.errors import ErrorCode
from telecart.signalling.messages import (
    Accept,
    Answer,
    Chat,
    Error,
    Hangup,
    IceCandidate,
    MediaState,
    Offer,
    QueueUpdate,
    RequestConsultation,
    SessionUpdate,
)
from telecart.signalling.session_state import SessionState
from tests.server.harness import RunningServer, next_of, running_server, server_config


async def _queued(server: RunningServer, cart_name: str, specialty: str = "cardiology") -> tuple:
    cart = await server.cart(cart_name)
    await cart.send(
        RequestConsultation(specialty=specialty, priority="routine", reason="chest pain")
    )
    update = await next_of(cart, SessionUpdate)
    assert isinstance(update, SessionUpdate)
    return cart, update.session.session_id


async def test_specialist_sees_request_in_queue_urgent_first(server: RunningServer) -> None:
    spec = await server.specialist("amir", "cardiology")
    first = await next_of(spec, QueueUpdate)
    assert isinstance(first, QueueUpdate) and first.entries == []
    _, routine_id = await _queued(server, "cart-routine")
    await next_of(spec, QueueUpdate)
    urgent_cart = await server.cart("cart-urgent")
    await urgent_cart.send(RequestConsultation(specialty="cardiology", priority="urgent"))
    queue = await next_of(spec, QueueUpdate)
    assert isinstance(queue, QueueUpdate)
    assert [e.priority for e in queue.entries] == ["urgent", "routine"]
    assert [e.position for e in queue.entries] == [1, 2]
    assert queue.entries[1].session_id == routine_id
    assert queue.entries[1].cart_name == "cart-routine"


async def test_specialist_of_other_specialty_does_not_see_request(server: RunningServer) -> None:
    neuro = await server.specialist("nurlan", "neurology")
    await next_of(neuro, QueueUpdate)
    await _queued(server, "cart-1", "cardiology")
    await _queued(server, "cart-2", "neurology")
    queue = await next_of(neuro, QueueUpdate)
    assert isinstance(queue, QueueUpdate)
    assert queue.specialty == "neurology" and len(queue.entries) == 1


async def test_two_simultaneous_accepts_have_exactly_one_winner(server: RunningServer) -> None:
    a = await server.specialist("a", "cardiology")
    b = await server.specialist("b", "cardiology")
    cart, session_id = await _queued(server, "cart-1")
    await asyncio.gather(
        a.send(Accept(session_id=session_id)), b.send(Accept(session_id=session_id))
    )

    async def outcome(client) -> str:  # type: ignore[no-untyped-def]
        while True:
            msg = await client.receive(10)
            if isinstance(msg, Error):
                assert msg.code is ErrorCode.ALREADY_TAKEN
                return "lost"
            if isinstance(msg, SessionUpdate) and msg.session.state is SessionState.ACCEPTED:
                return "won"

    results = sorted(await asyncio.gather(outcome(a), outcome(b)))
    assert results == ["lost", "won"]
    accepted = await next_of(cart, SessionUpdate)
    assert isinstance(accepted, SessionUpdate)
    assert accepted.session.state is SessionState.ACCEPTED
    stored = await server.store.session(session_id)
    assert stored is not None and stored.state is SessionState.ACCEPTED


async def test_taken_request_leaves_other_specialists_queue(server: RunningServer) -> None:
    a = await server.specialist("a", "cardiology")
    b = await server.specialist("b", "cardiology")
    _, session_id = await _queued(server, "cart-1")
    while True:
        queue = await next_of(b, QueueUpdate)
        assert isinstance(queue, QueueUpdate)
        if queue.entries:
            break
    await a.send(Accept(session_id=session_id))
    queue = await next_of(b, QueueUpdate)
    assert isinstance(queue, QueueUpdate) and queue.entries == []


async def test_full_relay_and_states_until_hangup(server: RunningServer) -> None:
    spec = await server.specialist("a", "cardiology")
    cart, sid = await _queued(server, "cart-1")
    await spec.send(Accept(session_id=sid))
    await next_of(cart, SessionUpdate)
    await cart.send(Offer(session_id=sid, sdp="v=0 offer"))
    offer = await next_of(spec, Offer)
    assert isinstance(offer, Offer) and offer.sdp == "v=0 offer"
    await spec.send(Answer(session_id=sid, sdp="v=0 answer"))
    answer = await next_of(cart, Answer)
    assert isinstance(answer, Answer) and answer.sdp == "v=0 answer"
    await spec.send(
        IceCandidate(
            session_id=sid,
            candidate="candidate:1 1 udp 1 127.0.0.1 9 typ host",
            sdp_mid="0",
            sdp_mline_index=0,
        )
    )
    cand = await next_of(cart, IceCandidate)
    assert isinstance(cand, IceCandidate) and cand.sdp_mid == "0"
    await cart.send(MediaState(session_id=sid, state="connected"))
    live = await next_of(spec, SessionUpdate)
    while isinstance(live, SessionUpdate) and live.session.state is not SessionState.LIVE:
        live = await next_of(spec, SessionUpdate)
    await cart.send(Chat(session_id=sid, text="Patient is ready"))
    chat = await next_of(spec, Chat)
    assert isinstance(chat, Chat) and chat.text == "Patient is ready" and chat.sender == "cart-1"
    await spec.send(Hangup(session_id=sid))
    for client in (cart, spec):
        while True:
            update = await next_of(client, SessionUpdate)
            assert isinstance(update, SessionUpdate)
            if update.session.state is SessionState.ENDED:
                assert update.session.end_reason == "hangup"
                break
    stored = await server.store.session(sid)
    assert stored is not None and stored.state is SessionState.ENDED
    states = [s for s, _ in await server.store.session_events(sid)]
    assert states == ["requested", "queued", "accepted", "connecting", "live", "ended"]


async def test_other_cart_cannot_send_into_session(server: RunningServer) -> None:
    spec = await server.specialist("a", "cardiology")
    cart, sid = await _queued(server, "cart-1")
    await spec.send(Accept(session_id=sid))
    await next_of(cart, SessionUpdate)
    intruder = await server.cart("cart-2")
    await intruder.send(Offer(session_id=sid, sdp="evil"))
    err = await next_of(intruder, Error)
    assert isinstance(err, Error) and err.code is ErrorCode.NOT_IN_SESSION
    await intruder.send(Chat(session_id=sid, text="hello?"))
    await next_of(intruder, Error)
    # The specialist got nothing from the intruder: the first relayed message is the cart's own.
    await cart.send(Chat(session_id=sid, text="real"))
    while True:
        msg = await spec.receive(10)
        assert not isinstance(msg, Offer)
        if isinstance(msg, Chat):
            assert msg.text == "real"
            break


async def test_specialist_who_did_not_accept_cannot_join(server: RunningServer) -> None:
    a = await server.specialist("a", "cardiology")
    b = await server.specialist("b", "cardiology")
    cart, sid = await _queued(server, "cart-1")
    await a.send(Accept(session_id=sid))
    await next_of(cart, SessionUpdate)
    await b.send(Answer(session_id=sid, sdp="v=0 hijack"))
    err = await next_of(b, Error)
    assert isinstance(err, Error) and err.code is ErrorCode.NOT_IN_SESSION
    await b.send(Hangup(session_id=sid))
    err = await next_of(b, Error)
    assert isinstance(err, Error) and err.code is ErrorCode.NOT_IN_SESSION
    stored = await server.store.session(sid)
    assert stored is not None and stored.state is SessionState.ACCEPTED


async def test_specialist_cannot_accept_other_specialty(server: RunningServer) -> None:
    derm = await server.specialist("d", "dermatology")
    _, sid = await _queued(server, "cart-1", "cardiology")
    await derm.send(Accept(session_id=sid))
    err = await next_of(derm, Error)
    assert isinstance(err, Error) and err.code is ErrorCode.FORBIDDEN


async def test_cart_cannot_open_second_consultation(server: RunningServer) -> None:
    cart, _ = await _queued(server, "cart-1")
    await cart.send(RequestConsultation(specialty="neurology"))
    err = await next_of(cart, Error)
    assert isinstance(err, Error) and err.code is ErrorCode.SESSION_OPEN


async def test_unknown_specialty_refused(server: RunningServer) -> None:
    cart = await server.cart("cart-1")
    await cart.send(RequestConsultation(specialty="astrology"))
    err = await next_of(cart, Error)
    assert isinstance(err, Error) and err.code is ErrorCode.UNKNOWN_SPECIALTY


async def test_cart_cancels_waiting_request(server: RunningServer) -> None:
    from telecart.signalling.messages import Cancel

    spec = await server.specialist("a", "cardiology")
    cart, sid = await _queued(server, "cart-1")
    await cart.send(Cancel(session_id=sid, reason="patient left"))
    ended = await next_of(cart, SessionUpdate)
    assert isinstance(ended, SessionUpdate) and ended.session.state is SessionState.ENDED
    assert ended.session.end_reason == "cancelled"
    while True:
        queue = await next_of(spec, QueueUpdate)
        assert isinstance(queue, QueueUpdate)
        if not queue.entries:
            break


async def test_relay_to_offline_peer_reports_peer_offline(server: RunningServer) -> None:
    spec = await server.specialist("a", "cardiology")
    cart, sid = await _queued(server, "cart-1")
    await spec.send(Accept(session_id=sid))
    await next_of(cart, SessionUpdate)
    await spec.close()
    await asyncio.sleep(0.2)
    await cart.send(Offer(session_id=sid, sdp="v=0"))
    err = await next_of(cart, Error)
    assert isinstance(err, Error) and err.code is ErrorCode.PEER_OFFLINE


async def test_request_nobody_accepts_ends_with_timeout(tmp_path: Path) -> None:
    config = dataclasses.replace(server_config(tmp_path), request_timeout_s=1)
    async with running_server(config) as srv:
        spec = await srv.specialist("a", "cardiology")
        cart, _ = await _queued(srv, "cart-1")
        ended = await next_of(cart, SessionUpdate, timeout_s=20)
        assert isinstance(ended, SessionUpdate)
        assert ended.session.state is SessionState.ENDED
        assert ended.session.end_reason == "timeout"
        while True:
            queue = await next_of(spec, QueueUpdate)
            assert isinstance(queue, QueueUpdate)
            if not queue.entries:
                break
        entries = await srv.store.audit_entries()
        assert any(e.actor == "system" and e.action == "session_ended" for e in entries)


async def _accepted(srv: RunningServer, spec: SignallingClient) -> tuple[SignallingClient, str]:
    cart, sid = await _queued(srv, "cart-1")
    await spec.send(Accept(session_id=sid))
    accepted = await next_of(cart, SessionUpdate)
    assert isinstance(accepted, SessionUpdate)
    assert accepted.session.state is SessionState.ACCEPTED
    return cart, sid


async def test_a_session_reconnecting_too_long_ends_with_link_lost(tmp_path: Path) -> None:
    config = dataclasses.replace(server_config(tmp_path), reconnect_timeout_s=1)
    async with running_server(config) as srv:
        spec = await srv.specialist("a", "cardiology")
        cart, sid = await _accepted(srv, spec)
        await spec.send(MediaState(session_id=sid, state="disconnected"))
        ended = await next_of(cart, SessionUpdate)
        assert isinstance(ended, SessionUpdate)
        assert ended.session.state is SessionState.RECONNECTING
        ended = await next_of(cart, SessionUpdate, timeout_s=20)
        assert isinstance(ended, SessionUpdate)
        assert ended.session.state is SessionState.ENDED
        assert ended.session.end_reason == "link_lost"


async def test_a_cart_may_end_its_session_as_restarted_a_specialist_may_not(
    server: RunningServer,
) -> None:
    spec = await server.specialist("a", "cardiology")
    cart, sid = await _accepted(server, spec)
    await spec.send(Hangup(session_id=sid, reason="cart_restarted"))
    ended = await next_of(cart, SessionUpdate)
    assert isinstance(ended, SessionUpdate) and ended.session.end_reason == "hangup"
    cart2, sid2 = await _queued(server, "cart-2")
    await spec.send(Accept(session_id=sid2))
    await next_of(cart2, SessionUpdate)
    await cart2.send(Hangup(session_id=sid2, reason="cart_restarted"))
    while True:
        ended = await next_of(spec, SessionUpdate)
        assert isinstance(ended, SessionUpdate)
        if ended.session.session_id == sid2 and ended.session.state is SessionState.ENDED:
            break
    assert ended.session.end_reason == "cart_restarted"
