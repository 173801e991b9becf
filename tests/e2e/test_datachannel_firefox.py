"""Firefox ESR, datachannel-only: over MQTT to the whole agent (its trickle of "" then null
relayed as it is), and messages of every size both ways against an echoing agent side."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agent.runtime.app import Agent
from agent.web.server import ViewerServer
from tests.e2e.mqtt_rig import RpcClient
from tests.e2e.stack import running_stack
from tests.e2e.test_datachannel_aiortc import SIZES, AgentSide
from tests.infra.browsers import FirefoxBidi, launch_firefox
from tests.infra.mosquitto import MosquittoBroker

# The page side: a datachannel-only RTCPeerConnection with `control` and two more channels.
SETUP = """
(async () => {
  const t = window.t = { cands: [], inbox: {}, opened: [], pc: new RTCPeerConnection() };
  const watch = (ch) => {
    ch.binaryType = "arraybuffer";
    t.inbox[ch.label] = [];
    ch.onopen = () => t.opened.push(ch.label);
    ch.onmessage = (e) => t.inbox[ch.label].push(
      typeof e.data === "string" ? "s:" + e.data : "b:" + e.data.byteLength + ":" +
      new Uint8Array(e.data).slice(0, 8).join(","));
  };
  t.channels = {
    control: t.pc.createDataChannel("control"),
    ordered: t.pc.createDataChannel("ordered"),
    unordered: t.pc.createDataChannel("unordered", { ordered: false }),
  };
  Object.values(t.channels).forEach(watch);
  t.pc.onicecandidate = (e) => t.cands.push(e.candidate ? e.candidate.candidate : null);
  await t.pc.setLocalDescription(await t.pc.createOffer());
  return t.pc.localDescription.sdp;
})()
"""


@pytest.fixture
async def page(tmp_path: Path) -> AsyncIterator[FirefoxBidi]:
    site = ViewerServer()
    await site.start()
    try:
        async with launch_firefox(tmp_path / "firefox") as bidi:
            await bidi.navigate(site.url)  # an http page, as WebRTC on loopback wants
            yield bidi
    finally:
        await site.stop()


async def _wait_js(page: FirefoxBidi, condition: str, timeout: float = 30) -> None:
    async def holds() -> None:
        while not await page.evaluate(f"Boolean({condition})"):
            await asyncio.sleep(0.05)

    await asyncio.wait_for(holds(), timeout)


async def _set_answer(page: FirefoxBidi, sdp: str) -> None:
    await page.evaluate(
        f"window.t.pc.setRemoteDescription({{type: 'answer', sdp: {json.dumps(sdp)}}})"
    )


async def _trickled(page: FirefoxBidi) -> list[str | None]:
    """Firefox's candidates up to and including its final null."""
    await _wait_js(page, "window.t.cands.includes(null)")
    cands: list[str | None] = await page.evaluate_json("window.t.cands")
    return cands


async def test_firefox_datachannel_only_over_mqtt_control_answers(
    page: FirefoxBidi, broker: MosquittoBroker, agent: Agent
) -> None:
    async with RpcClient(broker, "viewer-ff") as client:
        offer = await page.evaluate(SETUP)
        result = await client.call("webrtc.offer", {"session": "ff", "sdp": offer})
        assert "m=video" not in result["sdp"] and "m=application" in result["sdp"]
        await _set_answer(page, result["sdp"])
        cands = await _trickled(page)
        assert "" in cands  # Firefox's per-section end-of-candidates, relayed as sent
        for candidate in cands:
            # As a page relays them: "" and null both mean end-of-candidates (PROTOCOL.md 4).
            response = await client.request(
                "webrtc.candidate", {"session": "ff", "candidate": candidate, "sdpMid": "0"}
            )
            assert "error" not in response, response
        await client.wait_state("ff", "connected")
        await _wait_js(page, "window.t.opened.includes('control')")
        await page.evaluate(
            "window.t.channels.control.send(JSON.stringify("
            "{jsonrpc: '2.0', id: 7, method: 'stream.get', params: {}}))"
        )
        await _wait_js(page, "window.t.inbox.control.length >= 1")
        reply = json.loads((await page.evaluate_json("window.t.inbox.control"))[0][2:])
        assert reply["id"] == 7 and reply["result"]["codec"] == "H264"


def _page_send(label: str, size: int, seed: int) -> str:
    return (
        f"window.t.channels[{json.dumps(label)}].send("
        f"new Uint8Array({size}).map((_, i) => ({seed} + i * 7) & 255))"
    )


def _summary(data: bytes | str) -> str:
    if isinstance(data, str):
        return "s:" + data
    return f"b:{len(data)}:" + ",".join(str(b) for b in data[:8])


async def test_firefox_messages_of_every_size_both_ways_ordered_and_unordered(
    page: FirefoxBidi,
) -> None:
    side = AgentSide()
    async with running_stack() as stack:
        stack.manager.on_channel_event = side.on_event
        offer = await page.evaluate(SETUP)
        answer = await stack.manager.offer("viewer-ff", "ff", offer)
        await _set_answer(page, answer)
        for candidate in await _trickled(page):
            await stack.manager.add_candidate("viewer-ff", "ff", candidate or None, "0")
        await _wait_js(page, "window.t.opened.length === 3")
        await side.until(lambda: len(side.opened) == 3)
        ids: dict[str, Any] = {label: cid for cid, label in side.opened.items()}

        for label in ("ordered", "unordered"):
            for seed, size in enumerate(SIZES):
                await page.evaluate(_page_send(label, size, seed))
            await page.evaluate(f"window.t.channels[{json.dumps(label)}].send('text é')")
            # Each message is echoed back by the agent side: both directions at once.
            await side.until(lambda label=label: len(side.received.get(ids[label], [])) == 5, 60)
            await _wait_js(page, f"window.t.inbox[{json.dumps(label)}].length === 5", 60)
            got = [_summary(m) for m in side.received[ids[label]]]
            echoed = await page.evaluate_json(f"window.t.inbox[{json.dumps(label)}]")
            sent = [
                f"b:{size}:" + ",".join(str((seed + i * 7) & 255) for i in range(min(size, 8)))
                for seed, size in enumerate(SIZES)
            ] + ["s:text é"]
            if label == "ordered":
                assert got == sent and echoed == sent
            else:
                assert sorted(got) == sorted(sent) and sorted(echoed) == sorted(sent)


# Debian's Firefox ESR offers H.264 only with these (NOTES.md); the second must be in user.js,
# which launch_firefox writes.
H264_PREFS: dict[str, bool | int | str] = {
    "media.webrtc.hw.h264.enabled": True,
    "gfx.blacklist.webrtc.hw.acceleration.h264": 1,
}

VIDEO_SETUP = """
(async () => {
  const t = window.t = { cands: [], inbox: [], opened: false, pc: new RTCPeerConnection() };
  t.pc.addTransceiver("video", { direction: "recvonly" });
  t.control = t.pc.createDataChannel("control");
  t.control.onopen = () => { t.opened = true; };
  t.control.onmessage = (e) => t.inbox.push(e.data);
  t.pc.ontrack = (e) => {
    const video = document.createElement("video");
    video.muted = true; video.autoplay = true; video.srcObject = new MediaStream([e.track]);
    document.body.appendChild(video);
  };
  t.pc.onicecandidate = (e) => t.cands.push(e.candidate ? e.candidate.candidate : null);
  await t.pc.setLocalDescription(await t.pc.createOffer());
  return t.pc.localDescription.sdp;
})()
"""

FRAMES_DECODED = """
(async () => {
  const stats = await window.t.pc.getStats();
  let decoded = 0;
  stats.forEach((s) => { if (s.type === "inbound-rtp" && s.kind === "video")
    decoded = s.framesDecoded || 0; });
  return decoded;
})()
"""


async def test_firefox_video_and_control_channel_over_mqtt(
    tmp_path: Path, broker: MosquittoBroker, agent: Agent
) -> None:
    site = ViewerServer()
    await site.start()
    try:
        async with (
            launch_firefox(tmp_path / "firefox-h264", prefs=H264_PREFS) as page,
            RpcClient(broker, "viewer-ff") as client,
        ):
            await page.navigate(site.url)
            offer = await page.evaluate(VIDEO_SETUP)
            assert "H264" in offer, "Firefox offered no H.264 (prefs not applied?)"
            result = await client.call("webrtc.offer", {"session": "ffv", "sdp": offer})
            assert "m=video" in result["sdp"] and "m=application" in result["sdp"]
            await _set_answer(page, result["sdp"])
            for candidate in await _trickled(page):
                await client.request(
                    "webrtc.candidate", {"session": "ffv", "candidate": candidate, "sdpMid": "0"}
                )
            await client.wait_state("ffv", "connected")
            await _wait_js(page, "window.t.opened")
            await page.evaluate(
                "window.t.control.send(JSON.stringify("
                "{jsonrpc: '2.0', id: 1, method: 'stream.get', params: {}}))"
            )
            await _wait_js(page, "window.t.inbox.length >= 1")
            reply = json.loads((await page.evaluate_json("window.t.inbox"))[0])
            assert reply["id"] == 1 and reply["result"]["width"] == 320

            async def decoded(count: int) -> None:
                while await page.evaluate(FRAMES_DECODED) < count:
                    await asyncio.sleep(0.1)

            try:
                await asyncio.wait_for(decoded(30), 30)
            except TimeoutError:
                stats = await page.evaluate_json(
                    "(async () => { const r = []; (await window.t.pc.getStats()).forEach("
                    "(s) => { if (s.type === 'inbound-rtp') r.push(s); }); return r; })()"
                )
                raise AssertionError(f"Firefox decoded under 30 frames: {stats}") from None
    finally:
        await site.stop()
