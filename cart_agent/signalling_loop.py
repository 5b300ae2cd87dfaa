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


CONNECT_TIMEOUT_S = 4.0  # a connection attempt into a dead link gives up this soon
HEARTBEAT_S = 5.0  # a half-dead socket (link down) is noticed within ~1.5 times this
URGENT_DELAYS_S = (0.2, 1.0)  # between attempts while a consultation waits for the server


class NotConnectedError(Exception):
    """The server cannot be reached right now; the agent is reconnecting."""


class SignallingLoop:
    """Keeps one authenticated cart connection open for the agent's lifetime.

    After a drop it waits a jittered, growing delay (so a clinic's carts do not all return
    at once after a server restart) and reconnects; the delays start over once connected.
    While `urgent()` is true (a consultation is open) it retries within a second instead,
    so media can be renegotiated soon after the link returns.
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

    async def run(self) -> None:
        """Connect and dispatch until cancelled."""
        delays = self._delays()
        while True:
            client = SignallingClient(
                self._url, role="cart", token=self._token, heartbeat_s=HEARTBEAT_S
            )
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT_S):
                    welcome = await client.connect()
            except ProtocolError as exc:
                level = logging.ERROR if exc.code is ErrorCode.AUTH_FAILED else logging.WARNING
                log.log(level, "the server refused the cart: %s", exc.message)
                await client.close()
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
                await client.close()
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
