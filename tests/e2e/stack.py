"""The agent's media path, assembled as app.py does, for end-to-end tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from agent.media.fanout import FanOut
from agent.media.feed import CameraFeed
from agent.net.ice import IceServers
from agent.net.sessions import SessionManager
from agent.rtc.certificate import Certificate
from agent.rtc.dtls import SrtpProfile
from hw.source import StreamSettings
from hw.testsrc import TestPatternSource


@dataclass
class Stack:
    fanout: FanOut
    manager: SessionManager
    feed: CameraFeed
    states: list[tuple[str, str, str, str | None]] = field(default_factory=list)
    candidates: list[tuple[str, str, str | None]] = field(default_factory=list)
    state_changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_state(self, client: str, session: str, state: str, timeout: float = 20) -> None:
        async def reached() -> None:
            while not any(s[:3] == (client, session, state) for s in self.states):
                self.state_changed.clear()
                await self.state_changed.wait()

        await asyncio.wait_for(reached(), timeout)

    def forget(self, client: str) -> None:
        """Drop what was recorded of a client's sessions: the soak's thousand clients would
        otherwise grow these lists, and its RSS figures are the agent's, not the harness's."""
        self.states[:] = [s for s in self.states if s[0] != client]
        self.candidates[:] = [c for c in self.candidates if c[0] != client]


@contextlib.asynccontextmanager
async def running_stack(
    *,
    settings: StreamSettings | None = None,
    dtls_setup: str | None = "active",
    srtp_profiles: list[SrtpProfile] | None = None,
    max_viewers: int = 16,
    ice_servers: IceServers | None = None,
    ice_addresses: list[str] | None = None,
    accept_datachannel: bool = True,
) -> AsyncIterator[Stack]:
    source = TestPatternSource(settings or StreamSettings(320, 240, 30, 500_000))
    fanout = FanOut(source.request_keyframe)
    stack_ref: list[Stack] = []

    def on_state(client: str, session: str, state: str, reason: str | None) -> None:
        stack_ref[0].states.append((client, session, state, reason))
        stack_ref[0].state_changed.set()

    def on_candidate(client: str, session: str, candidate: str | None) -> None:
        stack_ref[0].candidates.append((client, session, candidate))

    manager = SessionManager(
        fanout=fanout,
        certificate=Certificate.generate(),
        ice_addresses=ice_addresses if ice_addresses is not None else ["127.0.0.1"],
        ice_servers=ice_servers or IceServers(),
        max_viewers=max_viewers,
        on_state=on_state,
        on_candidate=on_candidate,
        dtls_setup=dtls_setup,
        srtp_profiles=srtp_profiles,
        accept_datachannel=accept_datachannel,
    )
    feed = CameraFeed(source, fanout)
    stack = Stack(fanout, manager, feed)
    stack_ref.append(stack)
    feed.start()
    try:
        yield stack
    finally:
        await manager.close_all("test over")
        await asyncio.to_thread(feed.stop)
