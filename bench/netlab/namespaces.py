"""The two network namespaces of a link lab, their addresses and their clean-up.

Addresses come only from 198.18.0.0/15 (RFC 2544 benchmarking): the cart side is
198.18.1.1/24, the clinic side 198.18.2.1/24, each with a route to the other's /24
through its TUN device. Names carry a per-run id so parallel runs never collide.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
_CLONE_NEWNET = 0x40000000
_NO_IPV6 = "net.ipv6.conf.all.disable_ipv6=1"

CART_IP = "198.18.1.1"
CLINIC_IP = "198.18.2.1"
CART_NET = "198.18.1.0/24"
CLINIC_NET = "198.18.2.0/24"
TUN_NAME = "tclink0"


class NamespaceError(RuntimeError):
    """An ``ip`` command failed; the message carries the command and its error."""


def ip(*args: str) -> None:
    """Run ``ip ARGS``, raising NamespaceError with ip's own message on failure."""
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise NamespaceError(f"ip {' '.join(args)}: {proc.stderr.strip()}")


def call_in_netns(netns: str, fn: Callable[[], T]) -> T:
    """Run ``fn`` in a short-lived thread inside ``netns`` and return its result.

    A network namespace belongs to a thread, so the caller's own stays as it is; sockets
    and TUN fds made by ``fn`` keep the namespace they were made in, whoever uses them.
    """
    results: list[T] = []
    errors: list[BaseException] = []

    def enter_and_call() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
            try:
                if libc.setns(fd, _CLONE_NEWNET) != 0:
                    errno = ctypes.get_errno()
                    raise OSError(errno, f"setns into {netns} failed: {os.strerror(errno)}")
            finally:
                os.close(fd)
            results.append(fn())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=enter_and_call, name=f"in-{netns}")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return results[0]


def new_run_id() -> str:
    return f"{os.getpid()}-{secrets.token_hex(2)}"


def netns_supported() -> str | None:
    """None if this process can build a lab, else the reason it cannot."""
    if os.geteuid() != 0:
        return "needs root (network namespaces and TUN devices)"
    if not os.path.exists("/dev/net/tun"):
        return "/dev/net/tun is missing"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, check=False)
    if probe.returncode != 0:
        return "`ip netns` does not work here"
    return None


@dataclass(frozen=True)
class NamespacePair:
    """``tc-cart-<id>`` and ``tc-clinic-<id>``."""

    run_id: str

    @property
    def cart(self) -> str:
        return f"tc-cart-{self.run_id}"

    @property
    def clinic(self) -> str:
        return f"tc-clinic-{self.run_id}"

    def create(self) -> None:
        """Make both namespaces with loopback up; on failure remove what was made."""
        try:
            for ns in (self.cart, self.clinic):
                ip("netns", "add", ns)
                ip("-n", ns, "link", "set", "lo", "up")
                # IPv4 only, so nothing but the benchmark's own traffic crosses the link.
                subprocess.run(
                    ["ip", "netns", "exec", ns, "sysctl", "-qw", _NO_IPV6],
                    capture_output=True,
                    check=False,
                )
        except NamespaceError:
            self.delete()
            raise

    def configure_tuns(self) -> None:
        """Address the TUN devices (which must exist) and route each side to the other."""
        for ns, address, peer in (
            (self.cart, CART_IP, CLINIC_NET),
            (self.clinic, CLINIC_IP, CART_NET),
        ):
            ip("-n", ns, "addr", "add", f"{address}/24", "dev", TUN_NAME)
            ip("-n", ns, "link", "set", TUN_NAME, "up", "txqueuelen", "1000")
            ip("-n", ns, "route", "add", peer, "dev", TUN_NAME)

    def delete(self) -> None:
        """Remove both namespaces; quiet about ones already gone."""
        for ns in (self.cart, self.clinic):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
