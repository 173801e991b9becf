"""What the MQTT client publishes: at once while connected, each owner (the client a reply
is for) within its share of the messages in flight; QoS >= 1 held while offline, bounded,
and flushed on the next connection."""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Callable
from typing import Final

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode

logger = logging.getLogger(__name__)

QUEUE_LIMIT: Final = 256
# Messages of one owner (a client's replies) in flight at once: one client's backlog then
# never fills the queue that every other client's replies go through.
OWNER_SHARE: Final = 32

Message = tuple[str, bytes, int, bool]  # topic, payload, qos, retain


class Outbox:
    """Publishing for one MQTT client; ``name`` says which in log lines."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._held: deque[Message] = deque()
        self._dropped_offline = 0
        self._owner_of: dict[int, str] = {}  # mid -> owner, until paho has sent it
        self.in_flight: Counter[str] = Counter()
        self.dropped_over_share = 0

    def send(self, client: paho.Client, message: Message, owner: str | None) -> bool:
        """Hand ``message`` to the connected ``client``; False if it was dropped."""
        if owner is not None and self.in_flight[owner] >= OWNER_SHARE:
            self.dropped_over_share += 1
            return False
        info = client.publish(*message)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            logger.debug(
                "mqtt %s: publish on %s dropped: %s",
                self._name,
                message[0],
                paho.error_string(info.rc),
            )
            return False
        if owner is not None and not info.is_published():
            self._owner_of[info.mid] = owner
            self.in_flight[owner] += 1
        return True

    def hold(self, message: Message) -> bool:
        """Keep ``message`` (QoS >= 1) for the next connection; False when full."""
        if len(self._held) >= QUEUE_LIMIT:
            if self._dropped_offline == 0:
                logger.warning(
                    "mqtt %s: offline queue full (%d messages): dropping new ones",
                    self._name,
                    QUEUE_LIMIT,
                )
            self._dropped_offline += 1
            return False
        topic, payload, qos, retain = message
        self._held.append((topic, bytes(payload), qos, retain))
        return True

    def flush(self, client: paho.Client, connected: Callable[[], bool]) -> None:
        """Publish what was held, oldest first, on a connection just made (as long as it
        lasts: a publish can end it)."""
        if self._dropped_offline:
            logger.warning(
                "mqtt %s: %d message(s) dropped while offline (queue full)",
                self._name,
                self._dropped_offline,
            )
            self._dropped_offline = 0
        while self._held and connected():
            client.publish(*self._held.popleft())

    def published(self, mid: int) -> None:
        """paho sent (QoS 0) or the broker acknowledged (QoS 1) message ``mid``."""
        owner = self._owner_of.pop(mid, None)
        if owner is not None:
            self.in_flight[owner] -= 1
            if self.in_flight[owner] <= 0:
                del self.in_flight[owner]

    def connection_ended(self) -> None:
        """What paho had not sent is gone with the connection."""
        self._owner_of.clear()
        self.in_flight.clear()

    def clear(self) -> None:
        self._held.clear()
