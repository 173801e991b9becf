"""Headless Chromium plays the agent's H.264 over our own WebRTC stack.

Until MQTT signalling is used, the test itself carries the SDP between the page and the
agent's session API; Chromium's trickled candidates go the same way.
"""

from __future__ import annotations

import logging
from typing import Any

from tests.e2e.stack import running_stack
from tests.infra.browsers import launch_chromium, open_page, page_webrtc_stats

logger = logging.getLogger(__name__)

VIEWER_PAGE = """<!doctype html><html><body><video id="v" autoplay muted playsinline></video>
<script>
const video = document.getElementById("v");
window.startOffer = async () => {
  window.t0 = performance.now();
  const pc = new RTCPeerConnection({iceServers: []});
  window.pc = pc;
  pc.addTransceiver("video", {direction: "recvonly"});
  pc.onicecandidate = (e) => window.sendCandidate(e.candidate ? e.candidate.candidate : null);
  pc.ontrack = (e) => { video.srcObject = new MediaStream([e.track]); };
  await pc.setLocalDescription(await pc.createOffer());
  return pc.localDescription.sdp;
};
window.acceptAnswer = (sdp) => window.pc.setRemoteDescription({type: "answer", sdp});
// Resolves once `count` frames were presented; reports when the first one was.
window.waitFrames = (count) => new Promise((resolve) => {
  let first = null;
  const onFrame = (now, meta) => {
    if (first === null) first = now - window.t0;
    if (meta.presentedFrames >= count) resolve({firstFrameMs: first});
    else video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
});
</script></body></html>"""


def _inbound_video(stats: list[dict[str, Any]]) -> dict[str, Any]:
    inbound = [s for s in stats if s.get("type") == "inbound-rtp" and s.get("kind") == "video"]
    assert inbound, "no inbound video stream in Chromium's getStats"
    return inbound[0]


async def test_chromium_decodes_60_h264_frames() -> None:
    async with running_stack() as stack, launch_chromium() as browser:
        page = await open_page(browser, html=None)

        async def send_candidate(candidate: str | None) -> None:
            await stack.manager.add_candidate("viewer-chromium", "s1", candidate)

        await page.expose_function("sendCandidate", send_candidate)
        await page.set_content(VIEWER_PAGE)
        offer = await page.evaluate("window.startOffer()")
        answer = await stack.manager.offer("viewer-chromium", "s1", offer)
        await page.evaluate("(sdp) => window.acceptAnswer(sdp)", answer)

        timing = await page.evaluate("window.waitFrames(60)")

        inbound = _inbound_video(await page_webrtc_stats(page))
        assert inbound["framesDecoded"] >= 60
        stats = await page_webrtc_stats(page)
        codec = next(s for s in stats if s.get("id") == inbound["codecId"])
        assert codec["mimeType"].lower() == "video/h264"
        assert inbound["frameWidth"] == 320 and inbound["frameHeight"] == 240
        logger.warning("offer to first decoded frame in Chromium: %.0f ms", timing["firstFrameMs"])
