"""The datachannel labelled `control`: a transport of agent/rpc (PROTOCOL.md section 6).

Each text message on a session's `control` channel goes to the dispatcher with
``Origin(client, Transport.DATACHANNEL, session)``, where the client is the one whose MQTT
offer created the session (so its role is that client's); the response goes back on the
same channel. The device also notifies on it: ``stream.changed`` and, once the viewer
subscribed, ``session.stats``. Bounds per channel, as on MQTT: requests per second, requests
waiting, and notifications skipped while the channel's send buffer is backed up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

from agent.net.driver import PeerDriver
from agent.net.errors import UnknownSessionError
from agent.net.session_stats import StatsSampler
from agent.rpc.errors import RpcError
from agent.rpc.methods import Origin, Transport
from agent.rpc.ratelimit import TokenBucket
from agent.rpc.wire import error_reply, notification, peek_id
from agent.rtc.datachannel import (
    ChannelClosed,
    ChannelMessage,
    ChannelOpened,
    ChannelsClosed,
    DataChannelEvent,
)

logger = logging.getLogger(__name__)

CONTROL_LABEL: Final = "control"
# As on MQTT (PROTOCOL.md A2): a request rate per channel and a bounded wait.
REQUEST_RATE: Final = 20.0
REQUEST_BURST: Final = 40.0
MAX_WAITING: Final = 16
# Notifications are dropped, not queued, while this much is still unsent on the channel: a
# viewer that stopped reading must not make the device hold a growing backlog.
MAX_BUFFERED_FOR_NOTIFY: Final = 256 * 1024
STATS_INTERVAL: Final = 1.0

Handle = Callable[[bytes, Origin], Awaitable[bytes | None]]
SessionKey = tuple[str, str]


@dataclass(slots=True)
class _Link:
    """One session's control channel and what serves it."""

    client: str
    session: str
    driver: PeerDriver
    channel_id: int | None = None
    waiting: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(MAX_WAITING))
    bucket: TokenBucket = field(default_factory=lambda: TokenBucket(REQUEST_RATE, REQUEST_BURST))
    worker: asyncio.Task[None] | None = None
    stats: asyncio.Task[None] | None = None
    dropped: int = 0


class ControlChannels:
    """The `control` channels of every session. Runs on the event loop.

    ``handle`` is the dispatcher's ``handle``; ``keyframes_in`` counts the camera's
    keyframes (for ``session.stats``).
    """

    def __init__(self, handle: Handle, *, keyframes_in: Callable[[], int]) -> None:
        self._handle = handle
        self._keyframes_in = keyframes_in
        self._loop = asyncio.get_running_loop()
        self._links: dict[SessionKey, _Link] = {}

    # --- what the session manager and the runtime call ----------------------------------

    def on_channel_event(
        self, client: str, session: str, driver: PeerDriver, event: DataChannelEvent
    ) -> None:
        key = (client, session)
        link = self._links.get(key)
        if link is not None and link.driver is not driver:  # a new offer replaced the session
            self.session_ended(client, session)
            link = None
        if isinstance(event, ChannelOpened) and event.label == CONTROL_LABEL:
            if link is None:
                link = self._links[key] = _Link(client, session, driver)
            if link.channel_id is None:
                link.channel_id = event.channel_id
                link.worker = self._loop.create_task(self._serve(link))
        elif link is None or getattr(event, "channel_id", link.channel_id) != link.channel_id:
            return
        elif isinstance(event, ChannelMessage):
            self._on_message(link, event.data)
        elif isinstance(event, ChannelClosed | ChannelsClosed):
            self.session_ended(client, session)

    def session_ended(self, client: str, session: str) -> None:
        """The session (or its control channel) is gone: stop serving it."""
        link = self._links.pop((client, session), None)
        if link is not None:
            for task in (link.worker, link.stats):
                if task is not None:
                    task.cancel()

    def notify_all(self, method: str, params: dict[str, Any]) -> None:
        """Send a notification on every open control channel (e.g. `stream.changed`)."""
        payload = notification(method, params).decode()
        for link in list(self._links.values()):
            self._notify(link, payload)

    def subscribe_stats(self, client: str, session: str, interval: float | None) -> None:
        """`session.stats` on the session's control channel every ``interval`` seconds."""
        link = self._links.get((client, session))
        if link is None:
            raise UnknownSessionError(f"session {session!r} has no open control channel")
        if link.stats is not None:
            link.stats.cancel()
        every = STATS_INTERVAL if interval is None else interval
        link.stats = self._loop.create_task(self._stats_loop(link, every))

    def close(self) -> None:
        for client, session in list(self._links):
            self.session_ended(client, session)

    @property
    def open_count(self) -> int:
        return len(self._links)

    # --- internals -----------------------------------------------------------------------

    def _on_message(self, link: _Link, data: bytes | str) -> None:
        if isinstance(data, bytes):
            error = RpcError.invalid_request("control carries JSON-RPC as text messages only")
            self._send(link, error_reply(None, error))
            return
        if not link.bucket.allow(self._loop.time()):
            self._refuse(link, data, RpcError.rate_limited("rate limited on control channel"))
            return
        try:
            link.waiting.put_nowait(data)
        except asyncio.QueueFull:
            link.dropped += 1
            if link.dropped == 1 or link.dropped % 100 == 0:
                logger.warning(
                    "session %s/%s: control: %d requests dropped (more than %d waiting)",
                    link.client,
                    link.session,
                    link.dropped,
                    MAX_WAITING,
                )

    def _refuse(self, link: _Link, payload: str, error: RpcError) -> None:
        found, request_id = peek_id(payload.encode())
        if found:
            self._send(link, error_reply(request_id, error))

    async def _serve(self, link: _Link) -> None:
        origin = Origin(link.client, Transport.DATACHANNEL, link.session)
        while True:
            payload = await link.waiting.get()
            reply = await self._handle(payload.encode(), origin)
            if reply is None:
                continue
            if not self._send(link, reply.decode()):
                # Too large for the peer's a=max-message-size (or the buffer is full): the
                # caller still learns why, in a reply that fits.
                message = f"response of {len(reply)} bytes could not be sent on control"
                self._refuse(link, payload, RpcError.internal(message))

    def _notify(self, link: _Link, payload: str) -> None:
        channels = link.driver.peer.channels
        if channels is None or link.channel_id is None:
            return
        if channels.buffered_amount(link.channel_id) > MAX_BUFFERED_FOR_NOTIFY:
            return
        self._send(link, payload)

    def _send(self, link: _Link, text: str) -> bool:
        channels = link.driver.peer.channels
        if channels is None or link.channel_id is None:
            return False
        try:
            channels.send(link.channel_id, text, self._loop.time())
        except ValueError as exc:
            logger.info("session %s/%s: control: not sent: %s", link.client, link.session, exc)
            return False
        finally:
            link.driver.kick()
        return True

    async def _stats_loop(self, link: _Link, interval: float) -> None:
        sampler = StatsSampler(link.session)
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                # The first reading is the baseline the first rates are measured from.
                params = sampler.sample(
                    link.driver.peer.stats, self._loop.time(), time.time(), self._keyframes_in()
                )
                if sampler.samples > 1:
                    self._notify(link, notification("session.stats", params).decode())
                await asyncio.sleep(interval)
