"""The telecart server for the media benchmark, run inside the clinic namespace.

`python -m bench.media_server --host 198.18.2.1 --port 8080 --data DIR [--static DIR]`
starts the real server app, makes one cart and one specialist, serves `--static` under
`/bench/` (the Chrome reference sender's page, same origin as `/ws`), prints one JSON line
`{"port", "cart_token", "username", "password"}` and runs until its stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
from pathlib import Path

from aiohttp import web

from telecart.config import ServerConfig
from telecart.server.app import create_app
from telecart.server.app_keys import STORE
from telecart.server.credentials import hash_password, new_token, token_hash

SPECIALTY = "cardiology"
USERNAME = "bench"


async def _serve(host: str, port: int, data_dir: Path, static: Path | None) -> int:
    config = ServerConfig(host=host, port=port, data_dir=data_dir)
    app = create_app(config)
    if static is not None:
        app.router.add_static("/bench/", static)
    runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        store = app[STORE]
        token = new_token()
        await store.add_cart("Bench cart", "Bench clinic", token_hash(token))
        password = secrets.token_urlsafe(12)
        password_hash = await asyncio.to_thread(hash_password, password)
        await store.add_specialist(USERNAME, "Dr Bench", password_hash, (SPECIALTY,))
        ready = {"port": port, "cart_token": token, "username": USERNAME, "password": password}
        print(json.dumps(ready), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    finally:
        await runner.cleanup()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--static", type=Path)
    args = parser.parse_args()
    return asyncio.run(_serve(args.host, args.port, args.data, args.static))


if __name__ == "__main__":
    sys.exit(main())
