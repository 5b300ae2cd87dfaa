"""Prometheus metrics, one registry per app (no process-wide state), all prefixed `telecart_`."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest


@dataclass
class ServerMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.carts_online = Gauge("telecart_carts_online", "Carts connected", registry=r)
        self.specialists_online = Gauge(
            "telecart_specialists_online", "Specialists connected", registry=r
        )
        self.queue_length = Gauge(
            "telecart_queue_length", "Requests waiting", ["specialty"], registry=r
        )
        self.sessions_live = Gauge("telecart_sessions_live", "Sessions with media up", registry=r)
        self.sessions_open = Gauge("telecart_sessions_open", "Sessions not ended", registry=r)
        self.messages_relayed = Counter(
            "telecart_messages_relayed", "Messages relayed between parties", ["type"], registry=r
        )
        self.errors = Counter("telecart_errors", "Errors sent to clients", ["code"], registry=r)
        self.logins = Counter("telecart_logins", "Login attempts", ["result"], registry=r)
        self.session_quality = Gauge(
            "telecart_session_quality", "Last connection quality score 0-5", ["session"], registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
