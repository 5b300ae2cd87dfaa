"""The cart's signalling after an outage: attempts made while the link was down hang (their
SYNs were lost); while a consultation is open, fresh attempts get through at once. On a
slow link the connection holds through its heartbeats, and a dead one is still noticed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from telecart.cart_agent.signalling_loop import CONNECT_TIMEOUT_S, HEARTBEAT_S, SignallingLoop
from telecart.signalling.messages import Message, Welcome
from tests.cart_agent.conftest import server
from tests.server.harness import RunningServer

__all__ = ["server"]


class BlackHoleProxy:
    """A TCP proxy to the server: connections accepted while `down` hang forever (as a
    connection begun in an outage does); later ones are forwarded, each chunk `delay_s`
    late, and nothing more once `cut` (a link gone dead under an open connection)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.down = True
        self.delay_s = 0.0
        self.cut = False
        self.accepted_while_down = 0
        self._closed = asyncio.Event()
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{port}/ws"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        if self.down:
            self.accepted_while_down += 1
            await self._closed.wait()  # never answers
            return
        upstream_reader, upstream_writer = await asyncio.open_connection(
            "127.0.0.1", self.target_port
        )
        self._writers.append(upstream_writer)
        await asyncio.gather(
            self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer)
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        in_flight: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        clock = asyncio.get_running_loop()

        async def deliver() -> None:
            while True:
                due, data = await in_flight.get()
                await asyncio.sleep(max(0.0, due - clock.time()))
                if not data:
                    break
                if not self.cut:
                    writer.write(data)
            writer.close()

        delivery = asyncio.create_task(deliver())
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                in_flight.put_nowait((clock.time() + self.delay_s, data))
        in_flight.put_nowait((clock.time() + self.delay_s, b""))
        await delivery

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        self._closed.set()
        for writer in self._writers:
            writer.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), 2)


@pytest.fixture
async def proxy(server: RunningServer) -> AsyncIterator[BlackHoleProxy]:
    proxy = BlackHoleProxy(server.port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()


async def _ignore(_: Message | Welcome) -> None:
    return None


async def _run(loop: SignallingLoop, proxy: BlackHoleProxy, hang_s: float) -> None:
    task = asyncio.create_task(loop.run())
    try:
        await asyncio.sleep(hang_s)
        proxy.down = False  # the link is back
        await asyncio.wait_for(loop.connected.wait(), CONNECT_TIMEOUT_S / 2)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_in_a_consultation_fresh_attempts_overtake_a_hanging_one(
    server: RunningServer, proxy: BlackHoleProxy
) -> None:
    token = await server.add_cart("cart-stagger")
    loop = SignallingLoop(proxy.url, token, _ignore, _ignore, urgent=lambda: True)
    await _run(loop, proxy, hang_s=2.5)
    assert loop.connections == 1
    assert proxy.accepted_while_down >= 2  # staggered attempts, all hanging until the return


async def test_without_a_consultation_one_attempt_at_a_time(
    server: RunningServer, proxy: BlackHoleProxy
) -> None:
    token = await server.add_cart("cart-calm")
    loop = SignallingLoop(proxy.url, token, _ignore, _ignore, urgent=lambda: False)
    task = asyncio.create_task(loop.run())
    try:
        await asyncio.sleep(2.5)
        assert proxy.accepted_while_down == 1
        assert not loop.connected.is_set()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_3_s_round_trip_keeps_the_connection_and_a_dead_link_is_noticed(
    server: RunningServer, proxy: BlackHoleProxy
) -> None:
    # 1.5 s each way: a satellite link's round trip plus one TCP retransmission. The pong
    # must be awaited longer than that (2.5 s closed the signalling on `bursty`).
    proxy.down, proxy.delay_s = False, 1.5
    token = await server.add_cart("cart-slow-link")
    loop = SignallingLoop(proxy.url, token, _ignore, _ignore)
    task = asyncio.create_task(loop.run())
    try:
        await asyncio.wait_for(loop.connected.wait(), CONNECT_TIMEOUT_S)
        await asyncio.sleep(1.5 * HEARTBEAT_S + 1.0)  # a ping, answered 3 s later
        assert loop.connected.is_set()
        assert loop.connections == 1
        proxy.cut = True
        started = asyncio.get_running_loop().time()
        while loop.connected.is_set():
            await asyncio.sleep(0.1)
            assert asyncio.get_running_loop().time() - started < 1.5 * HEARTBEAT_S + 1.0
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
