"""``LinkLab``: the two namespaces and the emulator process, as one async context manager."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.netlab.control import ControlClient
from bench.netlab.namespaces import CART_IP, CLINIC_IP, NamespacePair, netns_supported, new_run_id
from bench.netlab.netem import NetemLink, netem_available
from bench.netlab.profiles import PROFILES_FILE, Profile, load_profile, profile_to_json

_REPO_ROOT = Path(__file__).resolve().parents[2]
_READY_TIMEOUT_S = 15.0


class LinkLabError(RuntimeError):
    """The lab could not be built; the message says why and what to check."""


class LinkLab:
    """Two namespaces joined by an emulated link, for benchmarks in other processes.

    ``async with LinkLab(profile="rural-3g") as lab:`` then start processes with
    ``lab.run_in(lab.cart_ns, [...])``; the cart reaches the clinic at ``lab.clinic_ip``.
    The emulator is a separate process, so the benchmark's own CPU use does not disturb
    the link's timing.
    """

    cart_ip = CART_IP
    clinic_ip = CLINIC_IP

    def __init__(
        self,
        profile: str | Profile = "good",
        *,
        profiles_file: Path = PROFILES_FILE,
        seed: int | None = None,
        backend: str = "tun",
    ) -> None:
        """``backend``: ``"tun"`` (the userspace emulator), ``"netem"`` (kernel, untested
        here) or ``"auto"`` (netem when the kernel has it)."""
        self.profile = (
            profile if isinstance(profile, Profile) else load_profile(profile, profiles_file)
        )
        self._seed = seed
        self._namespaces = NamespacePair(new_run_id())
        self._workdir: Path | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._control: ControlClient | None = None
        if backend not in ("tun", "netem", "auto"):
            raise LinkLabError(f"backend must be 'tun', 'netem' or 'auto', got {backend!r}")
        self.backend = backend
        self._netem: NetemLink | None = None

    @property
    def cart_ns(self) -> str:
        return self._namespaces.cart

    @property
    def clinic_ns(self) -> str:
        return self._namespaces.clinic

    @property
    def control_path(self) -> Path:
        if self._workdir is None:
            raise LinkLabError("the lab is not running")
        return self._workdir / "control.sock"

    async def __aenter__(self) -> LinkLab:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        reason = netns_supported()
        if reason is not None:
            raise LinkLabError(f"cannot build the link lab: {reason}")
        self._workdir = Path(tempfile.mkdtemp(prefix="netlab-"))
        try:
            await asyncio.to_thread(self._namespaces.create)
            if self.backend == "auto":
                self.backend = "netem" if await asyncio.to_thread(netem_available) else "tun"
            if self.backend == "netem":
                self._netem = NetemLink(self._namespaces, self.profile)
                await self._netem.start()
            else:
                await self._start_emulator()
        except BaseException:
            await self.close()
            raise

    async def _start_emulator(self) -> None:
        argv = [
            sys.executable,
            "-m",
            "bench.netlab",
            "serve",
            "--run-id",
            self._namespaces.run_id,
            "--control",
            str(self.control_path),
            "--profile-json",
            profile_to_json(self.profile),
        ]
        if self._seed is not None:
            argv += ["--seed", str(self._seed)]
        self._process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=_REPO_ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert self._process.stdout is not None
        try:
            line = await asyncio.wait_for(self._process.stdout.readline(), _READY_TIMEOUT_S)
        except TimeoutError:
            line = b""
        if not line or not json.loads(line).get("ready"):
            err = b""
            if self._process.stderr is not None:
                with contextlib.suppress(TimeoutError):
                    err = await asyncio.wait_for(self._process.stderr.read(), 2.0)
            raise LinkLabError(f"the link emulator did not start: {err.decode().strip()}")
        self._control = ControlClient(self.control_path)
        await self._control.connect()

    async def close(self) -> None:
        """Stop the emulator and remove the namespaces; safe to call more than once."""
        if self._netem is not None:
            await self._netem.close()
            self._netem = None
        if self._control is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._control.request({"cmd": "stop"}), 2.0)
            await self._control.close()
            self._control = None
        if self._process is not None:
            if self._process.stdin is not None:
                self._process.stdin.close()
            try:
                await asyncio.wait_for(self._process.wait(), 5.0)
            except TimeoutError:
                self._process.kill()
                await self._process.wait()
            self._process = None
        await asyncio.to_thread(self._namespaces.delete)
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    async def run_in(
        self, ns: str, argv: list[str], **popen_kwargs: Any
    ) -> asyncio.subprocess.Process:
        """Start ``argv`` inside namespace ``ns`` (``lab.cart_ns`` or ``lab.clinic_ns``)."""
        if ns not in (self.cart_ns, self.clinic_ns):
            raise LinkLabError(f"{ns!r} is not one of this lab's namespaces")
        return await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", ns, *argv, **popen_kwargs
        )

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        if self._netem is not None:
            return await self._netem.request(message)
        if self._control is None:
            raise LinkLabError("the lab is not running")
        return await self._control.request(message)

    async def set(self, direction: str, **params: Any) -> dict[str, Any]:
        """Change ``"up"`` or ``"down"`` now; returns the direction's parameters in force."""
        reply = await self.request({"cmd": "set", "direction": direction, "params": params})
        params_now: dict[str, Any] = reply["params"]
        return params_now

    async def set_uplink(self, **params: Any) -> dict[str, Any]:
        return await self.set("up", **params)

    async def set_downlink(self, **params: Any) -> dict[str, Any]:
        return await self.set("down", **params)

    async def stats(self) -> dict[str, Any]:
        """``{"t": s, "up": {...}, "down": {...}}`` with the counters of ``DirectionStats``."""
        stats: dict[str, Any] = (await self.request({"cmd": "stats"}))["stats"]
        return stats

    async def series(self) -> list[dict[str, float]]:
        """Per 100 ms: ``t``, ``up_kbps``, ``down_kbps`` delivered and their capacities."""
        series: list[dict[str, float]] = (await self.request({"cmd": "series"}))["series"]
        return series

    async def restart_clock(self) -> None:
        """Make now t=0 of the profile's rate trace and outages (e.g. when a call starts)."""
        await self.request({"cmd": "restart_clock"})
