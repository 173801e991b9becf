"""Our datachannels against aiortc's: channels opened and closed by either side, messages of
1 B to 4 MiB both ways, ordered and unordered, with and without video."""

from __future__ import annotations

import asyncio
from typing import Any

import aiortc.rtcsctptransport
import pytest

from agent.net.driver import PeerDriver
from agent.rtc.datachannel import (
    ChannelClosed,
    ChannelMessage,
    ChannelOpened,
    ChannelOptions,
    DataChannelEvent,
)
from agent.rtc.sdp import ANSWER_MAX_MESSAGE_SIZE
from tests.e2e.aiortc_viewer import AiortcViewer
from tests.e2e.channel_peer import ChannelInbox
from tests.e2e.stack import running_stack

SIZES = [1, 1024, 200 * 1024, 4 * 1024 * 1024]


class AgentSide:
    """The agent's end of the channels, through the session manager's channel events: it
    echoes every message back on the channel it came on."""

    def __init__(self, *, echo: bool = True) -> None:
        self.echo = echo
        self.driver: PeerDriver | None = None
        self.opened: dict[int, str] = {}
        self.closed: list[int] = []
        self.received: dict[int, list[bytes | str]] = {}
        self.changed = asyncio.Event()

    def on_event(
        self, client: str, session: str, driver: PeerDriver, event: DataChannelEvent
    ) -> None:
        self.driver = driver
        if isinstance(event, ChannelOpened):
            self.opened[event.channel_id] = event.label
        elif isinstance(event, ChannelClosed):
            self.closed.append(event.channel_id)
        elif isinstance(event, ChannelMessage):
            self.received.setdefault(event.channel_id, []).append(event.data)
            if self.echo:
                self.send(event.channel_id, event.data)
        self.changed.set()

    def send(self, channel_id: int, data: bytes | str) -> None:
        assert self.driver is not None and self.driver.peer.channels is not None
        self.driver.peer.channels.send(channel_id, data, asyncio.get_running_loop().time())
        self.driver.kick()

    def open(self, label: str, *, ordered: bool = True) -> int:
        assert self.driver is not None and self.driver.peer.channels is not None
        now = asyncio.get_running_loop().time()
        channel_id = self.driver.peer.channels.open_channel(
            ChannelOptions(label, ordered=ordered), now
        )
        self.driver.kick()
        return channel_id

    def close(self, channel_id: int) -> None:
        assert self.driver is not None and self.driver.peer.channels is not None
        self.driver.peer.channels.close_channel(channel_id, asyncio.get_running_loop().time())
        self.driver.kick()

    async def until(self, predicate: Any, timeout: float = 30) -> None:
        async def reached() -> None:
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(reached(), timeout)


@pytest.fixture(autouse=True)
def _aiortc_takes_what_we_send(monkeypatch: pytest.MonkeyPatch) -> None:
    # aiortc announces 256 KiB but reassembles any size: let its offer say what it takes, so
    # that 4 MiB may go to it as RFC 8841 requires.
    monkeypatch.setattr(aiortc.rtcsctptransport, "LOCAL_MAX_MESSAGE_SIZE", ANSWER_MAX_MESSAGE_SIZE)


def _payload(size: int, seed: int) -> bytes:
    return bytes((seed + i * 7) & 0xFF for i in range(min(size, 4096))) * (size // 4096 + 1)


@pytest.mark.parametrize("video", [True, False], ids=["video+dc", "dc-only"])
async def test_channels_both_ways_all_sizes_ordered_and_unordered(video: bool) -> None:
    agent = AgentSide()
    async with running_stack() as stack:
        stack.manager.on_channel_event = agent.on_event
        viewer = AiortcViewer(video=video)
        ordered = ChannelInbox(viewer.pc.createDataChannel("ordered"))
        unordered = ChannelInbox(viewer.pc.createDataChannel("unordered", ordered=False))
        try:
            answer = await stack.manager.offer("viewer-1", "s", await viewer.offer())
            assert ("m=video" in answer) is video
            await viewer.accept(answer)
            await asyncio.gather(ordered.opened.wait(), unordered.opened.wait())
            await agent.until(lambda: set(agent.opened.values()) == {"ordered", "unordered"})

            for inbox in (ordered, unordered):
                sent = [_payload(size, seed)[:size] for seed, size in enumerate(SIZES)]
                sent.append("text é")
                for message in sent:
                    inbox.channel.send(message)
                echoed = await inbox.wait_count(len(sent), timeout=60)
                channel_id = inbox.channel.id
                if inbox is ordered:
                    assert agent.received[channel_id] == sent and echoed == sent
                else:
                    key = sorted(sent, key=repr)
                    assert sorted(agent.received[channel_id], key=repr) == key
                    assert sorted(echoed, key=repr) == key
            if video:
                await viewer.wait_frames(10)
        finally:
            await viewer.close()


async def test_channels_opened_and_closed_by_either_side() -> None:
    agent = AgentSide()
    async with running_stack() as stack:
        stack.manager.on_channel_event = agent.on_event
        viewer = AiortcViewer(video=False)
        theirs = [ChannelInbox(viewer.pc.createDataChannel(f"viewer-{i}")) for i in range(3)]
        opened_by_agent: list[ChannelInbox] = []
        viewer.pc.on("datachannel", lambda channel: opened_by_agent.append(ChannelInbox(channel)))
        try:
            await viewer.accept(await stack.manager.offer("viewer-1", "s", await viewer.offer()))
            await asyncio.gather(*(inbox.opened.wait() for inbox in theirs))
            await agent.until(lambda: len(agent.opened) == 3)

            ours = [agent.open(f"agent-{i}", ordered=i % 2 == 0) for i in range(3)]

            async def all_announced() -> None:
                while len(opened_by_agent) < 3:
                    await asyncio.sleep(0.01)

            await asyncio.wait_for(all_announced(), 30)
            by_label = {inbox.channel.label: inbox for inbox in opened_by_agent}
            assert sorted(by_label) == ["agent-0", "agent-1", "agent-2"]
            # Our ids are those of our DTLS role, never colliding with the viewer's.
            assert not set(ours) & {inbox.channel.id for inbox in theirs}
            for inbox in opened_by_agent:
                agent.send(inbox.channel.id, f"hello {inbox.channel.label}")
                assert await inbox.wait_count(1) == [f"hello {inbox.channel.label}"]

            theirs[0].channel.close()  # the viewer closes one of its own
            agent.close(ours[1])  # we close one of ours
            await asyncio.gather(theirs[0].closed.wait(), by_label["agent-1"].closed.wait())
            await agent.until(lambda: {theirs[0].channel.id, ours[1]} <= set(agent.closed))

            # The others still carry messages both ways.
            theirs[1].channel.send("still here")
            assert await theirs[1].wait_count(1) == ["still here"]
            agent.send(ours[2], b"\x01" * 1000)
            assert (await by_label["agent-2"].wait_count(2))[-1] == b"\x01" * 1000
        finally:
            await viewer.close()


async def test_a_message_over_the_peers_max_message_size_is_refused_with_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(aiortc.rtcsctptransport, "LOCAL_MAX_MESSAGE_SIZE", 65536)
    agent = AgentSide()
    async with running_stack() as stack:
        stack.manager.on_channel_event = agent.on_event
        viewer = AiortcViewer(video=False)
        inbox = ChannelInbox(viewer.pc.createDataChannel("c"))
        try:
            await viewer.accept(await stack.manager.offer("viewer-1", "s", await viewer.offer()))
            await inbox.opened.wait()
            await agent.until(lambda: len(agent.opened) == 1)
            with pytest.raises(ValueError, match="exceeds the peer's max-message-size 65536"):
                agent.send(inbox.channel.id, b"x" * 65537)
            agent.send(inbox.channel.id, b"x" * 65536)
            assert await inbox.wait_count(1) == [b"x" * 65536]
        finally:
            await viewer.close()
