"""Headless Chromium plays the agent's H.264 over our own WebRTC stack.

Until MQTT signalling is used, the test itself carries the SDP between the page and the
agent's session API; Chromium's trickled candidates go the same way.
"""

from __future__ import annotations

import logging

from tests.e2e.stack import running_stack
from tests.infra.browsers import (
    launch_chromium,
    open_page,
    page_webrtc_stats,
    wait_frames_decoded,
)

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
  pc.ontrack = (e) => {
    video.srcObject = new MediaStream([e.track]);
    video.requestVideoFrameCallback((now) => { window.firstFrameMs = now - window.t0; });
  };
  await pc.setLocalDescription(await pc.createOffer());
  return pc.localDescription.sdp;
};
window.acceptAnswer = (sdp) => window.pc.setRemoteDescription({type: "answer", sdp});
</script></body></html>"""


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

        # Waits on framesDecoded itself: a count of presented frames read first, then
        # framesDecoded from a later getStats, could be one behind (issue 14).
        inbound = await wait_frames_decoded(page, 60)
        first_frame_ms = await page.evaluate("window.firstFrameMs")
        assert isinstance(first_frame_ms, int | float), "no frame was presented"
        stats = await page_webrtc_stats(page)
        codec = next(s for s in stats if s.get("id") == inbound["codecId"])
        assert codec["mimeType"].lower() == "video/h264"
        assert inbound["frameWidth"] == 320 and inbound["frameHeight"] == 240
        logger.warning("offer to first presented frame in Chromium: %.0f ms", first_frame_ms)
