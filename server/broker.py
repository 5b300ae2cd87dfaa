"""The seam between connections and routing: messages are published to topics.

`LocalBroker` serves one process. A Redis pub/sub backplane implements the same `Broker`
protocol (publish to a channel, subscribe per connection) so several server nodes can share
carts and specialists without touching the handlers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from telecart.signalling.messages import Message

Deliver = Callable[[Message], Awaitable[None]]
Unsubscribe = Callable[[], None]


def party_topic(party_id: str) -> str:
    return f"party:{party_id}"


def specialty_topic(specialty: str) -> str:
    return f"specialty:{specialty}"


class Broker(Protocol):
    async def publish(self, topic: str, message: Message) -> int:
        """Deliver to every subscriber of `topic`; returns how many received it."""

    def subscribe(self, topic: str, deliver: Deliver) -> Unsubscribe: ...

    def subscriber_count(self, topic: str) -> int: ...


class LocalBroker:
    """In-process broker: a topic is a set of delivery callbacks."""

    def __init__(self) -> None:
        self._topics: dict[str, list[Deliver]] = {}

    async def publish(self, topic: str, message: Message) -> int:
        receivers = list(self._topics.get(topic, ()))
        for deliver in receivers:
            await deliver(message)
        return len(receivers)

    def subscribe(self, topic: str, deliver: Deliver) -> Unsubscribe:
        self._topics.setdefault(topic, []).append(deliver)

        def unsubscribe() -> None:
            subs = self._topics.get(topic)
            if subs and deliver in subs:
                subs.remove(deliver)
                if not subs:
                    del self._topics[topic]

        return unsubscribe

    def subscriber_count(self, topic: str) -> int:
        return len(self._topics.get(topic, ()))
