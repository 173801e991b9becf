"""Real networks for the media path: the agent and Chromium viewers in namespaces, tc between.

Layout (tests/infra/netns.py): the agent's host and each viewer's host behind one router
that forwards between them through tests/infra/linkemu.py (a userspace netem + tbf: this
kernel has no sch_netem), so each viewer's path has its own bottleneck with a bounded
queue, as a real link has, one-way delay and random loss. The
agent runs in this process with the event loop's thread inside the agent's namespace (its
sockets live there); each Chromium runs in its viewer's namespace.

`Watch` samples a page's getStats and the agent's encoder bitrate every `SAMPLE` seconds;
the tests and `edgecam bench network` read the same figures from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from playwright.async_api import Browser, Page

from agent.config import CameraConfig
from agent.runtime.bitrate import BitrateController
from hw.source import StreamSettings, VideoSource
from tests.e2e.stack import Stack, running_stack
from tests.infra.browsers import launch_chromium, open_page, page_webrtc_stats
from tests.infra.linkemu import LinkEmulator
from tests.infra.netns import Host, Topology

logger = logging.getLogger(__name__)

SAMPLE = 0.25  # seconds between getStats samples
STREAM = StreamSettings(640, 360, 30, 2_000_000)  # a test pattern that really uses 2 Mbit/s
# The bottleneck's queue, in time at its rate: a home router's or a cell's few hundred ms.
QUEUE_LATENCY_MS = 300

VIEWER_PAGE = """<!doctype html><html><body><video id="v" autoplay muted playsinline></video>
<script>
window.startOffer = async () => {
  const pc = new RTCPeerConnection({iceServers: []});
  window.pc = pc;
  pc.addTransceiver("video", {direction: "recvonly"});
  pc.onicecandidate = (e) => window.sendCandidate(e.candidate ? e.candidate.candidate : null);
  pc.ontrack = (e) => { document.getElementById("v").srcObject = new MediaStream([e.track]); };
  await pc.setLocalDescription(await pc.createOffer());
  return pc.localDescription.sdp;
};
window.acceptAnswer = (sdp) => window.pc.setRemoteDescription({type: "answer", sdp});
</script></body></html>"""

# (offer sdp) -> answer sdp; (candidate or None) -> None: how a page reaches its sender.
Answerer = Callable[[str], Awaitable[str]]
CandidateSink = Callable[[str | None], Awaitable[None]]


@dataclass
class Net:
    """The agent's host and the viewers' hosts behind the router, paths shaped by `link`."""

    topo: Topology
    hosts: dict[str, Host]
    link: LinkEmulator


@contextlib.contextmanager
def network(topo: Topology, viewers: Sequence[str]) -> Iterator[Net]:
    """Hosts `agent` and `viewers`, forwarded (and shaped) by the userspace link emulator."""
    hosts = {name: topo.add_host(name) for name in ("agent", *viewers)}
    with LinkEmulator(topo, list(hosts.values())) as link:
        yield Net(topo, hosts, link)


def shape(
    net: Net,
    to: str,
    *,
    rate_kbit: int | None = None,
    delay_ms: int = 0,
    loss_percent: float = 0.0,
) -> None:
    """Set the path from the router to host `to`: a `rate_kbit` bottleneck (None: none) with
    a `QUEUE_LATENCY_MS` queue, `delay_ms` one-way delay and random loss."""
    net.link.set_path(
        net.hosts[to],
        delay_ms=delay_ms,
        loss_percent=loss_percent,
        rate_kbit=rate_kbit,
        queue_ms=QUEUE_LATENCY_MS,
    )
    logger.info("path to %s: %s kbit/s, %d ms, %.1f%% loss", to, rate_kbit, delay_ms, loss_percent)


@dataclass
class Sample:
    at: float  # seconds since the watch started
    frames_decoded: int
    freeze_count: int
    freezes_duration: float
    jitter_buffer_ms: float | None
    bytes_received: int
    encoder_bitrate: int | None
    estimate: int | None


@dataclass
class Watch:
    """getStats of one page, sampled; the agent side read through `agent_figures`."""

    page: Page
    agent_figures: Callable[[], tuple[int | None, int | None]]  # (encoder bitrate, estimate)
    samples: list[Sample] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None
    _t0: float = 0.0

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._t0 = loop.time()
        self._task = loop.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def now(self) -> float:
        return asyncio.get_running_loop().time() - self._t0

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            stats = await page_webrtc_stats(self.page)
            inbound = next(
                (s for s in stats if s.get("type") == "inbound-rtp" and s.get("kind") == "video"),
                None,
            )
            if inbound is not None:
                encoder, estimate = self.agent_figures()
                emitted = inbound.get("jitterBufferEmittedCount") or 0
                self.samples.append(
                    Sample(
                        at=loop.time() - self._t0,
                        frames_decoded=inbound.get("framesDecoded", 0),
                        freeze_count=inbound.get("freezeCount", 0),
                        freezes_duration=inbound.get("totalFreezesDuration", 0.0),
                        jitter_buffer_ms=(
                            inbound.get("jitterBufferDelay", 0.0) / emitted * 1000
                            if emitted
                            else None
                        ),
                        bytes_received=inbound.get("bytesReceived", 0),
                        encoder_bitrate=encoder,
                        estimate=estimate,
                    )
                )
            await asyncio.sleep(SAMPLE)

    def between(self, start: float, end: float) -> list[Sample]:
        return [s for s in self.samples if start <= s.at <= end]

    def longest_stall(self, start: float, end: float) -> float:
        """The longest time in [start, end] without a newly decoded frame, seconds."""
        window = self.between(start, end)
        longest, since = 0.0, window[0].at if window else start
        for previous, sample in itertools.pairwise(window):
            if sample.frames_decoded > previous.frames_decoded:
                since = sample.at
            longest = max(longest, sample.at - since)
        return longest

    def received_kbps(self, start: float, end: float) -> float:
        window = self.between(start, end)
        if len(window) < 2:
            return 0.0
        first, last = window[0], window[-1]
        return (last.bytes_received - first.bytes_received) * 8 / (last.at - first.at) / 1000

    def fps(self, start: float, end: float) -> float:
        window = self.between(start, end)
        if len(window) < 2:
            return 0.0
        first, last = window[0], window[-1]
        return (last.frames_decoded - first.frames_decoded) / (last.at - first.at)

    def freezes(self, start: float, end: float) -> tuple[int, float]:
        """(freezes, seconds frozen) Chromium counted in [start, end]."""
        window = self.between(start, end)
        if len(window) < 2:
            return 0, 0.0
        first, last = window[0], window[-1]
        return (
            last.freeze_count - first.freeze_count,
            last.freezes_duration - first.freezes_duration,
        )

    def first_time(self, start: float, test: Callable[[Sample], bool]) -> float | None:
        return next((s.at for s in self.samples if s.at >= start and test(s)), None)


@contextlib.asynccontextmanager
async def chromium_viewer(
    host: Host, answer: Answerer, candidate: CandidateSink
) -> AsyncIterator[Page]:
    """A Chromium in `host`'s namespace whose page has offered and applied the answer."""
    async with launch_chromium(netns=host.netns) as browser:
        page = await _offer(browser, answer, candidate)
        yield page


async def _offer(browser: Browser, answer: Answerer, candidate: CandidateSink) -> Page:
    page = await open_page(browser, html=None)
    await page.expose_function("sendCandidate", candidate)
    await page.set_content(VIEWER_PAGE)
    offer: Any = await page.evaluate("window.startOffer()")
    await page.evaluate("(sdp) => window.acceptAnswer(sdp)", await answer(str(offer)))
    return page


@dataclass
class _Camera:
    """The camera supervisor's part the bitrate controller reads: settings and source."""

    camera: CameraConfig
    stack: Stack

    @property
    def source(self) -> VideoSource | None:
        return self.stack.feed.source


@dataclass
class Rig:
    topo: Topology
    agent: Host
    stack: Stack
    bitrate: BitrateController

    def figures(self, client: str) -> Callable[[], tuple[int | None, int | None]]:
        def read() -> tuple[int | None, int | None]:
            peer = next((p for c, _, p in self.stack.manager.peers() if c == client), None)
            estimate = peer.sender.target_bitrate if peer and peer.sender else None
            return self.bitrate.encoder_bitrate, estimate

        return read


@contextlib.asynccontextmanager
async def network_rig(net: Net, min_bitrate: int = 300_000) -> AsyncIterator[Rig]:
    agent = net.hosts["agent"]
    topo = net.topo
    # The loop's thread stays in the agent's namespace for the whole test: every socket the
    # agent opens (ICE) lives there. Chromium is started in its own namespace explicitly.
    with topo.enter(agent):
        async with running_stack(settings=STREAM, ice_addresses=[agent.address]) as stack:
            camera = _Camera(CameraConfig(bitrate=STREAM.bitrate, min_bitrate=min_bitrate), stack)
            loop = asyncio.get_running_loop()
            bitrate = BitrateController(stack.manager, camera, loop.time)
            task = loop.create_task(bitrate.run())
            try:
                yield Rig(topo, agent, stack, bitrate)
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


@contextlib.asynccontextmanager
async def watched_viewer(rig: Rig, host: Host, client: str) -> AsyncIterator[Watch]:
    manager = rig.stack.manager

    async def answer(offer: str) -> str:
        return await manager.offer(client, "s1", offer)

    async def candidate(value: str | None) -> None:
        await manager.add_candidate(client, "s1", value)

    async with chromium_viewer(host, answer, candidate) as page:
        watch = Watch(page, rig.figures(client))
        watch.start()
        try:
            await rig.stack.wait_state(client, "s1", "connected")
            yield watch
        finally:
            await watch.stop()


async def until(watch: Watch, test: Callable[[], bool], timeout: float) -> float | None:
    """Wait up to `timeout` s for `test`; the watch time it became true, else None."""
    deadline = watch.now + timeout
    while watch.now < deadline:
        if test():
            return watch.now
        await asyncio.sleep(0.25)
    return None
