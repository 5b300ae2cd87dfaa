"""A signalling client over aiohttp WebSockets, used by the cart agent, tests and benchmarks."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from types import TracebackType

import aiohttp

from telecart.signalling.errors import ErrorCode, ProtocolError
from telecart.signalling.messages import (
    Error,
    Hello,
    Message,
    Role,
    Welcome,
    encode_message,
    parse_message,
)


class ConnectionClosed(Exception):
    """The WebSocket closed; `code` is the close code when the server sent one."""

    def __init__(self, code: int | None) -> None:
        super().__init__(f"signalling connection closed (code {code})")
        self.code = code


class SignallingClient:
    """One authenticated connection to `/ws`: `connect()`, then `send()` and `receive()`."""

    def __init__(
        self,
        url: str,
        *,
        role: Role,
        token: str | None = None,
        cookies: Mapping[str, str] | None = None,
        heartbeat_s: float = 15.0,
    ) -> None:
        self._url = url
        self._role = role
        self._token = token
        self._cookies = dict(cookies or {})
        self._heartbeat_s = heartbeat_s
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self.welcome: Welcome | None = None

    async def connect(self, timeout_s: float = 10.0) -> Welcome:
        """Open the socket and authenticate; raises `ProtocolError(AUTH_FAILED)` if refused."""
        self._http = aiohttp.ClientSession(cookies=self._cookies)
        try:
            self._ws = await self._http.ws_connect(
                self._url,
                heartbeat=self._heartbeat_s,
                timeout=aiohttp.ClientWSTimeout(ws_close=5.0),
                max_msg_size=1024 * 1024,
            )
            await self.send(Hello(role=self._role, token=self._token))
            reply = await self.receive(timeout_s)
        except BaseException:
            await self.close()
            raise
        if isinstance(reply, Error):
            await self.close()
            raise ProtocolError(reply.code, reply.message)
        if not isinstance(reply, Welcome):
            await self.close()
            raise ProtocolError(ErrorCode.INVALID_MESSAGE, f"expected welcome, got {reply.TYPE}")
        self.welcome = reply
        return reply

    async def send(self, message: Message) -> None:
        if self._ws is None or self._ws.closed:
            raise ConnectionClosed(self._ws.close_code if self._ws else None)
        await self._ws.send_str(encode_message(message))

    async def receive(self, timeout_s: float | None = None) -> Message:
        """Next message from the server; raises `ConnectionClosed` when the socket ends."""
        if self._ws is None:
            raise ConnectionClosed(None)
        while True:
            msg = await asyncio.wait_for(self._ws.receive(), timeout_s)
            if msg.type == aiohttp.WSMsgType.TEXT:
                return parse_message(msg.data)
            if msg.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSING,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.ERROR,
            ):
                raise ConnectionClosed(self._ws.close_code)

    @property
    def closed(self) -> bool:
        return self._ws is None or self._ws.closed

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._http is not None:
            await self._http.close()
        self._ws = None
        self._http = None

    async def __aenter__(self) -> SignallingClient:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
