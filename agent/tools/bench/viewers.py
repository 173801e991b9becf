"""The parent's side of a media scenario: a sender process (ours or aiortc), receiver
processes, the signalling carried between them, and the sender's usage figures."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from agent.tools.bench.child import Child, Message, spawn

VIEWERS_PER_RECEIVER_PROCESS = 50
CONNECT_BATCH = 20
CONNECT_TIMEOUT = 30.0


@dataclass
class Rig:
    """One sender and its receivers; ``connect(n)`` brings the viewer count up to ``n``."""

    sender: Child
    receivers: list[Child]
    viewers: int = 0
    _route: dict[str, tuple[Child, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.sender.on_event = self._on_sender_event

    def _on_sender_event(self, message: Message) -> None:
        if message.get("event") == "candidate":
            target = self._route.get(message["client"])
            if target is not None:
                target[0].send("candidate", id=target[1], candidate=message["candidate"])

    async def _connect_one(self, index: int) -> None:
        receiver = self.receivers[index // VIEWERS_PER_RECEIVER_PROCESS % len(self.receivers)]
        ident, client = str(index), f"viewer-{index}"
        self._route[client] = (receiver, ident)
        offer = (await receiver.request("new", id=ident))["offer"]
        timeout = CONNECT_TIMEOUT
        answer = await self.sender.request("offer", timeout, client=client, session="s", sdp=offer)
        await receiver.request("answer", id=ident, sdp=answer["sdp"])

    async def connect(self, count: int) -> int:
        """Viewers up to ``count``; how many the sender has connected. A viewer that fails
        to connect (a sender past its knee) is counted, not fatal."""
        while self.viewers < count:
            batch = range(self.viewers, min(count, self.viewers + CONNECT_BATCH))
            await asyncio.gather(*(self._connect_one(i) for i in batch), return_exceptions=True)
            self.viewers = batch[-1] + 1
        return await self.wait_connected(count)

    async def wait_connected(self, count: int) -> int:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CONNECT_TIMEOUT
        while (connected := int((await self.usage())["connected"])) < count:
            if loop.time() > deadline:
                return connected
            await asyncio.sleep(0.1)  # polling the sender's count (another process)
        return connected

    async def usage(self) -> Message:
        return await self.sender.request("usage")

    async def reset(self) -> None:
        await asyncio.gather(*(r.request("reset") for r in self.receivers))

    async def reports(self) -> list[Message]:
        answers = await asyncio.gather(*(r.request("report") for r in self.receivers))
        return [viewer for answer in answers for viewer in answer["viewers"]]


def receiver_processes(max_viewers: int) -> int:
    wanted = -(-max_viewers // VIEWERS_PER_RECEIVER_PROCESS)
    return max(1, min(wanted, (os.cpu_count() or 2) * 2))


@contextlib.asynccontextmanager
async def rig(
    kind: str,
    frames: Path,
    fps: int,
    max_viewers: int,
    *,
    latency: bool = False,
    profile: Path | None = None,
) -> AsyncIterator[Rig]:
    args = ["--kind", kind, "--frames", str(frames), "--fps", str(fps)]
    if profile is not None:
        args += ["--profile", str(profile)]
    async with contextlib.AsyncExitStack() as stack:
        sender = await stack.enter_async_context(
            spawn("agent.tools.bench.sender", *args, *(["--latency"] if latency else []), name=kind)
        )
        receivers = [
            await stack.enter_async_context(
                spawn("agent.tools.bench.receiver", name=f"receiver-{i}")
            )
            for i in range(receiver_processes(max_viewers))
        ]
        yield Rig(sender, receivers)
