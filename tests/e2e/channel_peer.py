"""aiortc datachannels as a test sees them: an inbox per channel and JSON-RPC over `control`."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

WAIT = 30.0


class ChannelInbox:
    """Everything one aiortc RTCDataChannel delivers, and its open and close."""

    def __init__(self, channel: Any) -> None:
        self.channel = channel
        self.messages: list[bytes | str] = []
        self.opened = asyncio.Event()
        self.closed = asyncio.Event()
        self._changed = asyncio.Event()
        channel.on("open", self.opened.set)
        channel.on("close", self.closed.set)
        channel.on("message", self._on_message)
        if channel.readyState == "open":
            self.opened.set()

    def _on_message(self, data: bytes | str) -> None:
        self.messages.append(data)
        self._changed.set()

    async def wait_count(self, count: int, timeout: float = WAIT) -> list[bytes | str]:
        async def enough() -> None:
            while len(self.messages) < count:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(enough(), timeout)
        return self.messages

    async def wait_drained(self, timeout: float = WAIT) -> None:
        """Until aiortc has handed everything queued on the channel to SCTP."""

        async def drained() -> None:
            while self.channel.bufferedAmount > 0:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(drained(), timeout)


class ControlClient:
    """JSON-RPC 2.0 over an aiortc `control` channel: requests by id, notifications kept."""

    def __init__(self, channel: Any) -> None:
        self.inbox = ChannelInbox(channel)
        self.channel = channel
        self._ids = itertools.count(1)
        self._pending: dict[Any, asyncio.Future[dict[str, Any]]] = {}
        self.notifications: list[dict[str, Any]] = []
        self._noted = asyncio.Event()
        channel.on("message", self._on_message)

    def _on_message(self, data: bytes | str) -> None:
        body = json.loads(data)
        future = self._pending.pop(body.get("id"), None)
        if future is not None and not future.done():
            future.set_result(body)
        elif "method" in body:
            self.notifications.append(body)
            self._noted.set()

    async def request(self, method: str, params: Any = None) -> dict[str, Any]:
        request_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or {}}
        self.channel.send(json.dumps(body))
        return await asyncio.wait_for(future, WAIT)

    async def call(self, method: str, params: Any = None) -> Any:
        response = await self.request(method, params)
        assert "error" not in response, f"{method}: {response['error']}"
        return response["result"]

    async def wait_notification(self, method: str, count: int = 1) -> list[dict[str, Any]]:
        async def enough() -> list[dict[str, Any]]:
            while True:
                found = [n for n in self.notifications if n["method"] == method]
                if len(found) >= count:
                    return found
                self._noted.clear()
                await self._noted.wait()

        return await asyncio.wait_for(enough(), WAIT)
