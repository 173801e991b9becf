"""Chromium offering only Main, or only its High-family profile (setCodecPreferences), plays
the constrained-baseline stream (issue 8, point 6); with no H.264 at all it gets -32004."""

from __future__ import annotations

import pytest

from agent.net.sessions import NegotiationError
from tests.e2e.stack import running_stack
from tests.infra.browsers import launch_chromium, open_page, wait_frames_decoded

PAGE = """<!doctype html><html><body><video id="v" autoplay muted playsinline></video>
<script>
window.startOffer = async (profilePrefix) => {
  const pc = new RTCPeerConnection({iceServers: []});
  window.pc = pc;
  const transceiver = pc.addTransceiver("video", {direction: "recvonly"});
  const codecs = RTCRtpReceiver.getCapabilities("video").codecs.filter((c) =>
    profilePrefix === null
      ? c.mimeType === "video/VP8"
      : c.mimeType === "video/H264" &&
        (c.sdpFmtpLine || "").includes("profile-level-id=" + profilePrefix) &&
        (c.sdpFmtpLine || "").includes("packetization-mode=1"));
  if (!codecs.length) throw new Error("Chromium offers no such codec: " + profilePrefix);
  transceiver.setCodecPreferences(codecs);
  pc.onicecandidate = (e) => window.sendCandidate(e.candidate ? e.candidate.candidate : null);
  pc.ontrack = (e) => { document.getElementById("v").srcObject = new MediaStream([e.track]); };
  await pc.setLocalDescription(await pc.createOffer());
  return pc.localDescription.sdp;
};
window.acceptAnswer = (sdp) => window.pc.setRemoteDescription({type: "answer", sdp});
</script></body></html>"""


@pytest.mark.parametrize("profile", ["4d", "f4"], ids=["main-only", "high-444-only"])
async def test_a_constrained_baseline_stream_plays_in_a_single_profile_offer(
    profile: str,
) -> None:
    async with running_stack() as stack, launch_chromium() as browser:
        page = await open_page(browser, html=None)

        async def send_candidate(candidate: str | None) -> None:
            await stack.manager.add_candidate("viewer-chromium", "s1", candidate)

        await page.expose_function("sendCandidate", send_candidate)
        await page.set_content(PAGE)
        offer = await page.evaluate("(p) => window.startOffer(p)", profile)
        h264_lines = [line for line in offer.splitlines() if "profile-level-id=" in line]
        assert h264_lines and all(f"profile-level-id={profile}" in x for x in h264_lines)
        answer = await stack.manager.offer("viewer-chromium", "s1", offer)
        assert f"profile-level-id={profile}" in answer
        await page.evaluate("(sdp) => window.acceptAnswer(sdp)", answer)
        inbound = await wait_frames_decoded(page, 30)
        assert inbound["frameWidth"] == 320


async def test_an_offer_without_h264_is_refused_naming_why() -> None:
    async with running_stack() as stack, launch_chromium() as browser:
        page = await open_page(browser, html=None)
        await page.expose_function("sendCandidate", lambda candidate: None)
        await page.set_content(PAGE)
        offer = await page.evaluate("() => window.startOffer(null)")  # VP8 only
        with pytest.raises(NegotiationError, match=r"H\.264"):
            await stack.manager.offer("viewer-chromium", "s1", offer)
