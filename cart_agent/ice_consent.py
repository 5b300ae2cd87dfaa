"""ICE consent freshness that survives a 1.5 s round trip (RFC 7675).

aioice 0.13 checks consent every ~5 s with a single STUN request and a 0.5 s timeout,
and closes the connection after 6 failed checks in a row: on a satellite link (600 ms+
round trip) every check fails and the call dies after about 30 s
(shared/REFERENCE-LINKS.md). RFC 7675 asks for a check every 4-6 s, retransmitted, and
says consent expires only 30 s after the last authenticated response.

`install_consent_fix()` replaces `aioice.ice.Connection.query_consent` (the coroutine
aioice starts once connected and cancels on close) with one that follows the RFC: each
check is retransmitted (0.5, 1, 2 s...) and stays open for `ConsentPolicy.transaction_s`
so a late answer still counts, and the connection closes only when no check has been
answered for `expiry_s`. aioice is not forked: the method is swapped behind a version
and shape check, and tests/rate_control/test_ice_consent.py fails if the seam moves.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Final

import aioice
import aioice.ice
import aioice.stun

log = logging.getLogger(__name__)

TESTED_AIOICE: Final = ("0.13.",)


@dataclass(frozen=True)
class ConsentPolicy:
    interval_s: float = 5.0  # randomised 0.8-1.2 times, as RFC 7675 section 5.1 asks
    expiry_s: float = 30.0  # no answer for this long: consent is gone
    rto_s: float = 0.5  # first retransmission; doubles each time
    transaction_s: float = 8.0  # how long one check waits for an answer


def _retransmissions(policy: ConsentPolicy) -> int:
    """Retransmissions so one transaction (RTO doubling each time) ends within
    `transaction_s`: with r of them it lasts rto * (2 ** (r + 1) - 1)."""
    count = 0
    while policy.rto_s * (2 ** (count + 2) - 1) <= policy.transaction_s:
        count += 1
    return max(count, 1)


def _consent_loop(
    policy: ConsentPolicy, clock: Callable[[], float]
) -> Callable[[aioice.Connection], Coroutine[Any, Any, None]]:
    retransmissions = _retransmissions(policy)

    async def query_consent(self: aioice.Connection) -> None:
        assert self.remote_password is not None
        integrity_key = self.remote_password.encode("utf8")
        last_answer = clock()
        checks: set[asyncio.Task[None]] = set()

        async def check(pair: Any) -> None:
            nonlocal last_answer
            request = self.build_request(pair, nominate=False)
            try:
                await pair.protocol.request(
                    request,
                    pair.remote_addr,
                    integrity_key=integrity_key,
                    retransmissions=retransmissions,
                )
            except aioice.stun.TransactionError:
                return
            last_answer = clock()

        try:
            while True:
                await asyncio.sleep(policy.interval_s * (0.8 + 0.4 * random.random()))
                if clock() - last_answer >= policy.expiry_s:
                    log.info("ICE consent expired: no answer for %.0f s", policy.expiry_s)
                    self._query_consent_task = None
                    await self.close()
                    return
                # Checks overlap: a slow answer to one still counts while the next runs.
                for pair in list(self._nominated.values()):
                    task = asyncio.create_task(check(pair))
                    checks.add(task)
                    task.add_done_callback(checks.discard)
        finally:
            for task in list(checks):
                task.cancel()
            await asyncio.gather(*checks, return_exceptions=True)

    query_consent._telecart_policy = policy  # type: ignore[attr-defined]
    return query_consent


def consent_seam_present() -> bool:
    """aioice still starts consent checks through `Connection.query_consent`."""
    method = getattr(aioice.ice.Connection, "query_consent", None)
    if method is None or not inspect.iscoroutinefunction(method):
        return False
    if getattr(method, "_telecart_policy", None) is not None:
        return True
    return "self.query_consent()" in inspect.getsource(aioice.ice.Connection.connect)


def install_consent_fix(
    policy: ConsentPolicy | None = None, clock: Callable[[], float] = time.monotonic
) -> bool:
    """Swap aioice's consent check for the RFC 7675 one. Call once at start-up.

    Returns False, leaving aioice as it is, if aioice has changed shape.
    """
    if not aioice.__version__.startswith(TESTED_AIOICE):
        log.warning(
            "consent fix tested on aioice %s, running %s", TESTED_AIOICE, aioice.__version__
        )
    if not consent_seam_present():
        log.error(
            "aioice %s has no query_consent seam: consent fix not applied", aioice.__version__
        )
        return False
    current = aioice.ice.Connection.query_consent
    stock = getattr(current, "_telecart_stock", current)
    loop = _consent_loop(policy or ConsentPolicy(), clock)
    loop._telecart_stock = stock  # type: ignore[attr-defined]
    aioice.ice.Connection.query_consent = loop  # type: ignore[method-assign,assignment]
    return True


def uninstall_consent_fix() -> None:
    """Put aioice's own consent check back (tests)."""
    stock = getattr(aioice.ice.Connection.query_consent, "_telecart_stock", None)
    if stock is not None:
        aioice.ice.Connection.query_consent = stock  # type: ignore[method-assign]
