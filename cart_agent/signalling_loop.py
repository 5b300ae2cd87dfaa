"""The agent's connection to the server: connect, hello, dispatch, reconnect with backoff."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterator

import aiohttp

from telecart.signalling.backoff import backoff_delays
from telecart.signalling.client import ConnectionClosed, SignallingClient
from telecart.signalling.errors import ErrorCode, ProtocolError
from telecart.signalling.messages import Message, Welcome

log = logging.getLogger(__name__)

MessageHandler = Callable[[Message], Awaitable[None]]
WelcomeHandler = Callable[[Welcome], Awaitable[None]]


# TCP, the WebSocket upgrade and hello/welcome are three round trips: 4.5 s at the 1.5 s
# round trip of a poor satellite link.
CONNECT_TIMEOUT_S = 10.0
# aiohttp pings after this long without traffic and gives the pong half of it: a dead
# socket is noticed within 1.5 times this. At 5 s the 2.5 s wait closed the signalling
# (1006) on `bursty`, where a lost TCP segment and its retransmissions took longer; 4 s
# covers a 1.5 s round trip plus one retransmission.
HEARTBEAT_S = 8.0
URGENT_DELAYS_S = (0.2, 1.0)  # between attempts while a consultation waits for the server
# While urgent, a new attempt starts this often even if earlier ones still hang: a SYN
# lost in an outage is resent by the kernel only 1, 3 and 7 s later, so an attempt begun
# just before the link returns can take seconds; a fresh one gets through at once.
STAGGER_S = 1.0
MAX_ATTEMPTS = 6


class NotConnectedError(Exception):
    """The server cannot be reached right now; the agent is reconnecting."""


class SignallingLoop:
    """Keeps one authenticated cart connection open for the agent's lifetime.

    After a drop it waits a jittered, growing delay (so a clinic's carts do not all return
    at once after a server restart) and reconnects; the delays start over once connected.
    While `urgent()` is true (a consultation is open) it retries within a second instead,
    and starts a new attempt every `STAGGER_S` while earlier ones still hang, so the
    signalling (and with it media, renegotiated) is back within a second or two of the
    link.
    """

    def __init__(
        self,
        url: str,
        token: str,
        on_welcome: WelcomeHandler,
        on_message: MessageHandler,
        delays: Callable[[], Iterator[float]] = backoff_delays,
        urgent: Callable[[], bool] = lambda: False,
    ) -> None:
        self._url = url
        self._token = token
        self._on_welcome = on_welcome
        self._on_message = on_message
        self._delays = delays
        self._urgent = urgent
        self._rng = random.Random()
        self._client: SignallingClient | None = None
        self.connected = asyncio.Event()
        self.connections = 0

    async def send(self, message: Message) -> None:
        client = self._client
        if client is None or client.closed:
            raise NotConnectedError("not connected to the server; reconnecting")
        try:
            await client.send(message)
        except (ConnectionClosed, ConnectionError) as exc:
            raise NotConnectedError("the server connection dropped; reconnecting") from exc

    def _next_delay(self, delays: Iterator[float]) -> float:
        delay = next(delays)
        if self._urgent():
            return min(delay, self._rng.uniform(*URGENT_DELAYS_S))
        return delay

    async def _attempt(self) -> tuple[SignallingClient, Welcome]:
        client = SignallingClient(
            self._url, role="cart", token=self._token, heartbeat_s=HEARTBEAT_S
        )
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                return client, await client.connect()
        except BaseException:
            await client.close()
            raise

    async def _connect(self) -> tuple[SignallingClient, Welcome]:
        """One attempt; while urgent, staggered ones: the first welcome wins."""
        attempts: set[asyncio.Task[tuple[SignallingClient, Welcome]]] = set()
        try:
            while True:
                if len(attempts) < MAX_ATTEMPTS:
                    attempts.add(asyncio.create_task(self._attempt(), name="signalling-connect"))
                stagger = STAGGER_S if self._urgent() else None
                done, attempts = await asyncio.wait(
                    attempts, timeout=stagger, return_when=asyncio.FIRST_COMPLETED
                )
                winners = [t.result() for t in done if t.exception() is None]
                for client, _ in winners[1:]:
                    await client.close()
                if winners:
                    return winners[0]
                failures = [exc for t in done if (exc := t.exception()) is not None]
                if failures and not attempts:
                    raise failures[-1]
                for exc in failures:
                    log.info("a connection attempt failed (%s); others are under way", exc)
        finally:
            for task in attempts:
                task.cancel()
            await asyncio.gather(*attempts, return_exceptions=True)

    async def run(self) -> None:
        """Connect and dispatch until cancelled."""
        delays = self._delays()
        while True:
            try:
                client, welcome = await self._connect()
            except ProtocolError as exc:
                level = logging.ERROR if exc.code is ErrorCode.AUTH_FAILED else logging.WARNING
                log.log(level, "the server refused the cart: %s", exc.message)
                await asyncio.sleep(self._next_delay(delays))
                continue
            except (OSError, aiohttp.ClientError, TimeoutError, ConnectionClosed) as exc:
                delay = self._next_delay(delays)
                log.warning(
                    "cannot reach the server at %s (%s); retrying in %.1f s: check the "
                    "network cable or run `telecart devtest`",
                    self._url,
                    exc.__class__.__name__,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            delays = self._delays()
            self._client = client
            self.connections += 1
            self.connected.set()
            log.info("connected to the server as %s", welcome.name)
            try:
                await self._on_welcome(welcome)
                while True:
                    try:
                        message = await client.receive()
                    except ProtocolError as exc:
                        log.warning("ignored a message the server sent: %s", exc.message)
                        continue
                    try:
                        await self._on_message(message)
                    except (ConnectionClosed, ConnectionError, NotConnectedError):
                        raise
                    except Exception:
                        log.exception("failed to handle '%s' from the server", message.TYPE)
                    task = asyncio.current_task()
                    if task is not None and task.cancelling():
                        # A cancellation something below swallowed (seen when the agent
                        # closed while ending a consultation): stop, do not wait for the
                        # next message, which may never come.
                        raise asyncio.CancelledError
            except (
                ConnectionClosed,
                ConnectionError,
                NotConnectedError,
                aiohttp.ClientError,
            ) as exc:
                log.warning("server connection lost (%s); reconnecting", exc)
            finally:
                self.connected.clear()
                self._client = None
                await client.close()
            await asyncio.sleep(self._next_delay(delays))
