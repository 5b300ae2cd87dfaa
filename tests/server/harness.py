"""A real telecart server on a loopback port, with helpers to make carts, specialists, clients."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
from aiohttp import web

from telecart.config import ServerConfig
from telecart.server.app import create_app
from telecart.server.app_keys import STORE
from telecart.server.credentials import hash_password, new_token, token_hash
from telecart.server.store import Store
from telecart.signalling.client import SignallingClient
from telecart.signalling.messages import Message

PASSWORD = "correct horse battery"


@dataclasses.dataclass
class RunningServer:
    app: web.Application
    runner: web.AppRunner
    port: int
    config: ServerConfig
    clients: list[SignallingClient] = dataclasses.field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def store(self) -> Store:
        return self.app[STORE]

    async def add_cart(self, name: str, clinic: str = "Test clinic") -> str:
        token = new_token()
        await self.store.add_cart(name, clinic, token_hash(token))
        return token

    async def add_specialist(self, username: str, *specialties: str) -> None:
        await self.store.add_specialist(
            username, f"Dr {username}", hash_password(PASSWORD), tuple(specialties)
        )

    async def login(self, username: str, password: str = PASSWORD) -> dict[str, str]:
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{self.base}/api/login", json={"username": username, "password": password}
            ) as resp:
                assert resp.status == 200, await resp.text()
                return {"telecart_session": resp.cookies["telecart_session"].value}

    async def cart(self, name: str) -> SignallingClient:
        client = SignallingClient(self.ws_url, role="cart", token=await self.add_cart(name))
        self.clients.append(client)
        await client.connect()
        return client

    async def specialist(self, username: str, *specialties: str) -> SignallingClient:
        await self.add_specialist(username, *specialties)
        client = SignallingClient(
            self.ws_url, role="specialist", cookies=await self.login(username)
        )
        self.clients.append(client)
        await client.connect()
        return client


@asynccontextmanager
async def running_server(config: ServerConfig) -> AsyncIterator[RunningServer]:
    app = create_app(config)
    runner = web.AppRunner(app, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", config.port)
    await site.start()
    port = runner.addresses[0][1]
    server = RunningServer(app, runner, port, config)
    try:
        yield server
    finally:
        for client in server.clients:
            await client.close()
        await runner.cleanup()


def server_config(tmp_path: Path, **overrides: object) -> ServerConfig:
    return dataclasses.replace(ServerConfig(data_dir=tmp_path, port=0), **overrides)  # type: ignore[arg-type]


async def next_of(
    client: SignallingClient, kind: type[Message], timeout_s: float = 10.0
) -> Message:
    """Skip other messages until one of `kind` arrives."""
    while True:
        msg = await client.receive(timeout_s)
        if isinstance(msg, kind):
            return msg
