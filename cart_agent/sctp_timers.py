"""The data channels' SCTP retransmission timer as RFC 9260 has it, on aiortc's association.

aiortc 1.16 takes the timer's start from RFC 4960 and leaves out its back-off:
- RTO.Initial is 3 s (RFC 9260, section 16: 1 s). Until a DATA chunk sent once is
  acknowledged, a lost INIT, COOKIE ECHO or data channel OPEN waits 3 s. On `edge` the
  call's start overflows the link's queue; a stills channel opened 2.8 s after stills mode
  began, and a first still took 10 s to arrive.
- An expired T1 or T3 timer leaves the RTO as it was (RFC 9260, 6.3.3 E2 and 5.1: double
  it, up to RTO.Max). With a 1 s start that matters: over a round trip longer than 1 s
  (a satellite link with a full queue) every chunk would go again before its SACK came,
  a chunk sent twice gives no round-trip sample (Karn), and the timer would never learn.

The back-off stops at 3 s, as WebRTC's own SCTP transport has it (`kMaxTimerBackoffDuration`,
RFC 9260 allows 60 s): for want of samples (Karn, above), a backed-off timer stays
until a chunk sent once is acknowledged first. On
`edge`, with 60 s, two expiries in a row took it to 6.2 and 12.5 s, and a still waited
10 s for its second resend.

`tune_sctp_timers(transport)` does both on one association before it starts, through
instance attributes only (`_rto`, and `_t1_expired` / `_t3_expired`, which aiortc looks up
each time it sets a timer). A sample of the round trip sets the RTO afresh (aiortc's own
`_update_rto`), which ends a back-off.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiortc import RTCSctpTransport
from aiortc import rtcsctptransport as aiortc_sctp

log = logging.getLogger(__name__)

RTO_INITIAL_S = 1.0  # RFC 9260, section 16
MAX_BACKOFF_S = 3.0  # WebRTC's dcsctp transport; a measured RTO above it is kept


def sctp_timer_seam_present(transport: object) -> bool:
    """Whether `transport` has the attributes `tune_sctp_timers` changes, unstarted."""
    return (
        getattr(transport, "_rto", None) == getattr(aiortc_sctp, "SCTP_RTO_INITIAL", None)
        and getattr(transport, "_srtt", 0.0) is None
        and callable(getattr(transport, "_t1_expired", None))
        and callable(getattr(transport, "_t3_expired", None))
    )


def tune_sctp_timers(transport: RTCSctpTransport) -> bool:
    """A 1 s first RTO and a doubling one on each expiry, up to 3 s; False (the
    association keeps aiortc's timers, with an error logged) if aiortc has changed shape."""
    if not sctp_timer_seam_present(transport):
        log.error("aiortc's SCTP timers have changed: data channels keep aiortc's own")
        return False
    transport._rto = RTO_INITIAL_S
    for name in ("_t1_expired", "_t3_expired"):
        expired: Callable[[], None] = getattr(transport, name)
        setattr(transport, name, _backing_off(transport, expired))
    return True


def _backing_off(transport: RTCSctpTransport, expired: Callable[[], None]) -> Callable[[], None]:
    def expired_and_backed_off() -> None:
        transport._rto = max(transport._rto, min(transport._rto * 2, MAX_BACKOFF_S))
        log.debug("SCTP timer expired: next in %.1f s", transport._rto)
        expired()  # sets the next timer with the backed-off RTO

    return expired_and_backed_off
