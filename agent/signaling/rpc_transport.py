"""JSON-RPC over MQTT: requests from ``P/D/rpc/C``, answers to ``P/D/rpc/C/reply``.

Fair to every client: each has its own bounds (requests waiting, requests per second,
replies in flight at the broker connection), so one client's flood costs that client its
answers and nobody else theirs. What is refused is counted for telemetry, and logged within
a per-client budget.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from agent.rpc.dispatcher import Dispatcher
from agent.rpc.errors import RpcError
from agent.rpc.methods import Origin, Transport
from agent.rpc.ratelimit import PerKeyLimiter
from agent.rpc.wire import error_reply, peek_id
from agent.signaling.mqtt import MqttClient
from agent.signaling.topics import Topics

logger = logging.getLogger(__name__)

# Larger messages are dropped unread; up to this size the dispatcher answers "too large"
# (-32600) when it can find the request's id (PROTOCOL.md section 3).
MAX_MESSAGE: Final = 1024 * 1024
# Requests handled at once across all clients, and waiting per client: a client that sends
# faster than its requests are served waits for its own earlier ones, never for others'.
MAX_CONCURRENT: Final = 32
MAX_WAITING_PER_CLIENT: Final = 16
MAX_CLIENTS: Final = 4096


@dataclass(frozen=True, slots=True)
class RequestLimits:
    """Per-client request rate (every method; offers have their own, stricter limit)."""

    rate: float = 20.0
    burst: float = 40.0


class MqttRpcTransport:
    """Feeds MQTT requests to a dispatcher and publishes its replies to the caller."""

    def __init__(
        self,
        mqtt: MqttClient,
        topics: Topics,
        dispatcher: Dispatcher,
        *,
        clock: Callable[[], float],
        limits: RequestLimits = RequestLimits(),
        on_handled: Callable[[], None] | None = None,
    ) -> None:
        self._mqtt = mqtt
        self._topics = topics
        self._dispatcher = dispatcher
        self._clock = clock
        self._limiter = PerKeyLimiter(limits.rate, limits.burst, MAX_CLIENTS)
        self._running = asyncio.Semaphore(MAX_CONCURRENT)
        self._waiting: Counter[str] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()
        # The dispatcher's budget: a client's lines are bounded in total, whichever layer
        # refuses it (rate limit here, role or params there).
        self._log = dispatcher.log_budget
        self._on_handled = on_handled
        self.accepting = True
        self.dropped: Counter[str] = Counter()  # reason -> count, for telemetry

    def notify(self, client: str, payload: bytes) -> None:
        """A notification (e.g. ``webrtc.state``) to one client's reply topic."""
        self._mqtt.publish(self._topics.reply(client), payload, qos=1, owner=client)

    def on_message(self, topic: str, payload: bytes) -> None:
        """MQTT's on_message: screen a request and schedule it."""
        if not self.accepting:
            return  # shutting down: no new work (MQTT v5 clean start drops it for good)
        client = self._topics.client_of(topic)
        now = self._clock()
        if client is None:
            self._drop("topic", topic, now, "ignored a message on unexpected topic %r", topic)
            return
        if len(payload) > MAX_MESSAGE:
            self._drop("size", client, now, "dropped a %d-byte message", len(payload))
            return
        if not self._limiter.allow(client, now):
            self._refuse(client, payload, now)
            return
        if self._waiting[client] >= MAX_WAITING_PER_CLIENT:
            self._drop(
                "backlog", client, now, "dropped: %d requests waiting", MAX_WAITING_PER_CLIENT
            )
            return
        self._waiting[client] += 1
        task = asyncio.get_running_loop().create_task(self._handle(client, payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, client: str, payload: bytes) -> None:
        try:
            async with self._running:
                response = await self._dispatcher.handle(payload, Origin(client, Transport.MQTT))
        finally:
            self._waiting[client] -= 1
            if not self._waiting[client]:
                del self._waiting[client]
        if response is not None:
            self._publish_reply(client, response)
        if self._on_handled is not None:
            self._on_handled()

    def _refuse(self, client: str, payload: bytes, now: float) -> None:
        """Over its request rate: -32005 to the client where the id can be read."""
        self.dropped["rate"] += 1
        self._log.log(
            client, now, logging.WARNING, "client %r: rate limited", client, logger=logger
        )
        found, request_id = peek_id(payload)
        if found:
            error = RpcError.rate_limited("too many requests; try again shortly")
            self._publish_reply(client, error_reply(request_id, error).encode())

    def _publish_reply(self, client: str, payload: bytes) -> None:
        if not self._mqtt.publish(self._topics.reply(client), payload, qos=1, owner=client):
            self.dropped["reply"] += 1

    def _drop(self, reason: str, client: str, now: float, message: str, *args: Any) -> None:
        self.dropped[reason] += 1
        self._log.log(
            client,
            now,
            logging.WARNING,
            "mqtt: " + message + " (from %r)",
            *args,
            client,
            logger=logger,
        )

    async def close(self) -> None:
        """Stop taking requests and cancel those in progress."""
        self.accepting = False
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
