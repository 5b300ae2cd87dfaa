"""Which local addresses ICE gathers host candidates on (`agent.ice_addresses`).

aioice offers every non-loopback address of the machine. A cart with several links (LTE
modem, clinic LAN) can be pinned to the ones that reach the server; tests and the link lab
pin it to 127.0.0.1 or a namespace address so media never leaves the test network.
"""

from __future__ import annotations

from collections.abc import Sequence

import aioice.ice

_STOCK = aioice.ice.get_host_addresses


def restrict_host_addresses(addresses: Sequence[str]) -> None:
    """Gather host candidates only on `addresses` (IPv4 or IPv6); empty restores aioice's."""
    if not addresses:
        aioice.ice.get_host_addresses = _STOCK
        return
    pinned = list(addresses)

    def pinned_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in pinned if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = pinned_addresses
