"""Datachannel figures for people (nothing asserted): run inside the loopback namespace,
    bash tests/tools/isolated.sh /work/main/.venv/bin/python -m tests.e2e.dc_figures

1. median and p99 round trip of `stream.get` over `control` (aiortc, whole agent, 200 calls);
2. 10 MB binary agent -> aiortc and agent -> Chromium, beside aiortc -> agent and
   Chromium -> agent, in the same run (256 KiB messages: what Chromium accepts).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import aioice.ice

from agent.web.server import ViewerServer
from tests.e2e.aiortc_viewer import AiortcViewer
from tests.e2e.channel_peer import ChannelInbox, ControlClient
from tests.e2e.mqtt_rig import RpcClient, running_agent
from tests.e2e.stack import running_stack
from tests.e2e.test_datachannel_aiortc import AgentSide
from tests.infra.browsers import launch_chromium, open_page
from tests.infra.mosquitto import MosquittoBroker
from tests.infra.pki import Pki

TOTAL = 10 * 1000 * 1000
CHUNK = 256 * 1024
CALLS = 200

PAGE_SETUP = """
async () => {
  const t = window.t = { pc: new RTCPeerConnection(), got: 0, doneAt: null, sentAt: null };
  const ch = t.ch = t.pc.createDataChannel("bulk");
  ch.binaryType = "arraybuffer";
  ch.onmessage = (e) => {
    t.got += e.data.byteLength;
    if (t.got >= __TOTAL__ && t.doneAt === null) t.doneAt = Date.now();
  };
  await t.pc.setLocalDescription(await t.pc.createOffer());
  await new Promise((r) => {
    if (t.pc.iceGatheringState === "complete") r();
    t.pc.onicegatheringstatechange = () => t.pc.iceGatheringState === "complete" && r();
  });
  return t.pc.localDescription.sdp;
}
""".replace("__TOTAL__", str(TOTAL))

PAGE_SEND = """
async () => {
  const t = window.t, chunk = new Uint8Array(__CHUNK__);
  t.ch.bufferedAmountLowThreshold = 1 << 20;
  let sent = 0;
  while (sent < __TOTAL__) {
    if (t.ch.bufferedAmount > 4 << 20) {
      await new Promise((r) => { t.ch.onbufferedamountlow = r; });
    }
    const n = Math.min(__CHUNK__, __TOTAL__ - sent);
    t.ch.send(n === __CHUNK__ ? chunk : chunk.slice(0, n));
    sent += n;
  }
}
""".replace("__TOTAL__", str(TOTAL)).replace("__CHUNK__", str(CHUNK))


def _chunks() -> list[bytes]:
    return [b"\x5a" * min(CHUNK, TOTAL - at) for at in range(0, TOTAL, CHUNK)]


def _mbit(seconds: float) -> str:
    return f"{seconds:.2f} s, {TOTAL * 8 / seconds / 1e6:.0f} Mbit/s"


async def round_trips() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        with MosquittoBroker(directory / "broker", Pki(directory / "pki")) as broker:
            async with running_agent(broker, directory) as _, RpcClient(broker, "viewer-1") as rpc:
                viewer = AiortcViewer(datachannel=True)
                assert viewer.channel is not None
                control = ControlClient(viewer.channel)
                result = await rpc.call(
                    "webrtc.offer", {"session": "s", "sdp": await viewer.offer()}
                )
                await viewer.accept(result["sdp"])
                await control.inbox.opened.wait()
                times = []
                for _ in range(CALLS):
                    started = time.perf_counter()
                    await control.call("stream.get")
                    times.append((time.perf_counter() - started) * 1000)
                    # Paced under the channel's 20 requests per second (PROTOCOL.md A7).
                    await asyncio.sleep(0.055)
                await viewer.close()
    times.sort()
    p99 = times[int(len(times) * 0.99) - 1]
    print(
        f"stream.get over control, aiortc, {CALLS} calls: median {statistics.median(times):.2f} ms,"
        f" p99 {p99:.2f} ms, max {times[-1]:.2f} ms"
    )


async def _until(predicate: object, timeout: float = 120) -> None:
    async def holds() -> None:
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.002)

    await asyncio.wait_for(holds(), timeout)


async def aiortc_both_ways() -> None:
    side = AgentSide(echo=False)
    async with running_stack() as stack:
        stack.manager.on_channel_event = side.on_event
        viewer = AiortcViewer(video=False)
        inbox = ChannelInbox(viewer.pc.createDataChannel("bulk"))
        await viewer.accept(await stack.manager.offer("v", "s", await viewer.offer()))
        await inbox.opened.wait()
        await side.until(lambda: bool(side.opened))
        channel_id = next(iter(side.opened))
        assert side.driver is not None and side.driver.peer.channels is not None
        channels, loop = side.driver.peer.channels, asyncio.get_running_loop()

        received = lambda: sum(len(m) for m in inbox.messages)  # noqa: E731
        started = loop.time()
        for chunk in _chunks():
            channels.send(channel_id, chunk, loop.time())
        side.driver.kick()
        await _until(lambda: received() >= TOTAL)
        print(f"10 MB agent -> aiortc: {_mbit(loop.time() - started)}")

        got = lambda: sum(len(m) for m in side.received.get(channel_id, []))  # noqa: E731
        started = loop.time()
        for chunk in _chunks():
            inbox.channel.send(chunk)
        await _until(lambda: got() >= TOTAL)
        print(f"10 MB aiortc -> agent: {_mbit(loop.time() - started)}")
        await viewer.close()


async def chromium_both_ways() -> None:
    side = AgentSide(echo=False)
    site = ViewerServer()
    await site.start()
    async with running_stack() as stack, launch_chromium() as browser:
        stack.manager.on_channel_event = side.on_event
        page = await open_page(browser, site.url)
        offer = await page.evaluate(PAGE_SETUP)
        answer = await stack.manager.offer("v", "s", offer)
        await page.evaluate(
            "(sdp) => window.t.pc.setRemoteDescription({type: 'answer', sdp})", answer
        )
        await side.until(lambda: bool(side.opened), 30)
        await page.wait_for_function("window.t.ch.readyState === 'open'")
        channel_id = next(iter(side.opened))
        assert side.driver is not None and side.driver.peer.channels is not None
        channels, loop = side.driver.peer.channels, asyncio.get_running_loop()

        started = time.time()
        for chunk in _chunks():
            channels.send(channel_id, chunk, loop.time())
        side.driver.kick()
        await page.wait_for_function("window.t.doneAt !== null", timeout=120_000)
        done_at = await page.evaluate("window.t.doneAt")
        print(f"10 MB agent -> Chromium: {_mbit(done_at / 1000 - started)}")

        got = lambda: sum(len(m) for m in side.received.get(channel_id, []))  # noqa: E731
        started = loop.time()
        await page.evaluate(PAGE_SEND)
        await _until(lambda: got() >= TOTAL)
        print(f"10 MB Chromium -> agent: {_mbit(loop.time() - started)}")
    await site.stop()


async def main() -> None:
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]  # type: ignore[assignment]
    await round_trips()
    await aiortc_both_ways()
    await chromium_both_ways()


if __name__ == "__main__":
    asyncio.run(main())
