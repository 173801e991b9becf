"""Headless Chromium with bundlePolicy "max-bundle" whose BUNDLE tag section the device does
not want, end to end.

max-bundle makes the first section of the offer's a=group:BUNDLE (the tag) carry the one
transport. When that section is audio, or a datachannel while the device accepts none, the
device answers it accepted but inactive (agent/rtc/sdp.py build_answer); rejecting it made
Chromium's setRemoteDescription fail and its trickled candidates (sdpMid of the tag) be
dropped.

Chromium's first offer always puts the datachannel section after the transceivers; only a
re-offer keeps an earlier datachannel section first. So the datachannel-first page negotiates
the datachannel alone with a second RTCPeerConnection inside the page, then adds the video
transceiver and offers again: that offer goes to the device, which answers it as a new session.
"""

from __future__ import annotations

from typing import Any

import pytest

from agent.rtc.sdp import Offer
from tests.e2e.stack import running_stack
from tests.infra.browsers import (
    launch_chromium,
    open_page,
    page_webrtc_stats,
    wait_frames_decoded,
)

CLIENT, SESSION = "viewer-chromium", "s1"

VIEWER_PAGE = """<!doctype html><html><body><video id="v" autoplay muted playsinline></video>
<script>
const video = document.getElementById("v");
window.startOffer = async (first) => {
  const pc = new RTCPeerConnection({iceServers: [], bundlePolicy: "max-bundle"});
  window.pc = pc;
  if (first === "audio") {
    pc.addTransceiver("audio", {direction: "recvonly"});
  } else {
    pc.createDataChannel("control");
    const other = new RTCPeerConnection({iceServers: []});
    await pc.setLocalDescription(await pc.createOffer());
    await other.setRemoteDescription(pc.localDescription);
    await other.setLocalDescription(await other.createAnswer());
    await pc.setRemoteDescription(other.localDescription);
    other.close();
  }
  pc.addTransceiver("video", {direction: "recvonly"});
  pc.onicecandidate = (e) => window.sendCandidate(
    e.candidate ? {candidate: e.candidate.candidate, mid: e.candidate.sdpMid} : null);
  pc.ontrack = (e) => {
    if (e.track.kind === "video") video.srcObject = new MediaStream([e.track]);
  };
  await pc.setLocalDescription(await pc.createOffer());
  return pc.localDescription.sdp;
};
window.acceptAnswer = async (sdp) => {
  try { await window.pc.setRemoteDescription({type: "answer", sdp}); return "ok"; }
  catch (e) { return String(e); }
};
// Resolves once `count` frames were presented; rejects if the connection fails first.
window.waitFrames = (count) => new Promise((resolve, reject) => {
  window.pc.onconnectionstatechange = () => {
    if (window.pc.connectionState === "failed") reject(new Error("connection failed"));
  };
  const onFrame = (now, meta) => {
    if (meta.presentedFrames >= count) resolve(meta.presentedFrames);
    else video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
});
</script></body></html>"""


def _sections(sdp: str) -> list[list[str]]:
    blocks: list[list[str]] = [[]]
    for line in sdp.splitlines():
        if line.startswith("m="):
            blocks.append([])
        blocks[-1].append(line)
    return blocks


@pytest.mark.parametrize("first", ["audio", "application"])
async def test_chromium_max_bundle_with_an_unwanted_tag_section_plays(first: str) -> None:
    trickled_mids: list[str | None] = []
    async with running_stack(accept_datachannel=False) as stack, launch_chromium() as browser:
        page = await open_page(browser, html=None)

        async def send_candidate(candidate: dict[str, Any] | None) -> None:
            if candidate is None:
                await stack.manager.add_candidate(CLIENT, SESSION, None)
                return
            trickled_mids.append(candidate["mid"])
            await stack.manager.add_candidate(
                CLIENT, SESSION, candidate["candidate"], candidate["mid"]
            )

        await page.expose_function("sendCandidate", send_candidate)
        await page.set_content(VIEWER_PAGE)
        offer_sdp = await page.evaluate("(first) => window.startOffer(first)", first)
        offer = Offer.parse(offer_sdp)
        assert offer.bundle_tag is offer.sections[0] and offer.sections[0].kind == first
        assert [s.kind for s in offer.sections] == [first, "video"]

        answer = await stack.manager.offer(CLIENT, SESSION, offer_sdp)
        assert await page.evaluate("(sdp) => window.acceptAnswer(sdp)", answer) == "ok"

        session, tag, video = _sections(answer)
        assert "a=group:BUNDLE 0 1" in session
        assert tag[0].split()[1] == "9" and "a=mid:0" in tag
        assert any(line.startswith("a=candidate:") for line in tag)
        if first == "audio":
            assert "a=inactive" in tag and "a=rtcp-mux" in tag
        else:
            assert "a=sctp-port:5000" in tag
        assert "a=sendonly" in video and not any(x.startswith("a=candidate:") for x in video)

        # Waits on framesDecoded itself (within a deadline): a count of presented frames read
        # first, then framesDecoded from a later getStats, could be one behind (issue 14).
        inbound = await wait_frames_decoded(page, 30)
        assert await page.evaluate("window.waitFrames(30)") >= 30
        stats = await page_webrtc_stats(page)
        codec = next(s for s in stats if s.get("id") == inbound["codecId"])
        assert codec["mimeType"].lower() == "video/h264"
        # Chromium trickles for the tag's mid only: the mid the answer made the transport's.
        assert set(trickled_mids) <= {"0"}
        await stack.wait_state(CLIENT, SESSION, "connected")
