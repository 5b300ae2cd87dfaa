"""Over TLS the login cookie is Secure and the socket is wss://."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import socket
import ssl
import subprocess
from pathlib import Path

import aiohttp
import pytest

from telecart.server.app import serve
from telecart.server.credentials import hash_password
from telecart.server.store import Store
from tests.server.harness import PASSWORD, server_config


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_tls_login_sets_secure_cookie(tmp_path: Path, self_signed: tuple[Path, Path]) -> None:
    cert, key = self_signed
    config = dataclasses.replace(
        server_config(tmp_path), port=_free_port(), tls_cert=cert, tls_key=key
    )
    store = await Store.open(config.database_path)
    await store.add_specialist("amir", "Dr Amir", hash_password(PASSWORD), ("cardiology",))
    await store.close()
    stop = asyncio.Event()
    task = asyncio.create_task(serve(config, stop))
    client_ssl = ssl.create_default_context(cafile=str(cert))
    client_ssl.check_hostname = False
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                try:
                    async with http.post(
                        f"https://127.0.0.1:{config.port}/api/login",
                        json={"username": "amir", "password": PASSWORD},
                        ssl=client_ssl,
                    ) as resp:
                        assert resp.status == 200
                        header = resp.headers["Set-Cookie"]
                    break
                except aiohttp.ClientConnectorError:
                    await asyncio.sleep(0.1)
            else:
                raise AssertionError("TLS server did not start")
        assert "Secure" in header and "HttpOnly" in header
    finally:
        stop.set()
        await task
