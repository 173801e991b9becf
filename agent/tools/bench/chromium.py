"""Headless Debian Chromium for the bench (Playwright, a dev dependency, imported here only):
a page served from http://127.0.0.1 (Chromium gathers no loopback candidate on an opaque
origin) that offers recvonly video and times, with ``performance.now()`` from the moment the
offer is sent, the answer applied, ICE connected, DTLS connected and the first frame shown
(``requestVideoFrameCallback``); it can also record each shown frame's RTP timestamp and
expected display time (wall clock) for glass-to-glass.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from agent.tools.bench.child import Child
from agent.web.server import ViewerServer

CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
# NOTES.md: what Debian's Chromium needs to do WebRTC on loopback, headless.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
)

PAGE = """<!doctype html><html><body><video id="v" autoplay muted playsinline></video>
<script>
window.startOffer = async () => {
  if (window.bench && window.bench.pc) window.bench.pc.close();
  const b = window.bench = {frames: [], record: false};
  const pc = b.pc = new RTCPeerConnection({iceServers: []});
  const video = document.getElementById("v");
  pc.addTransceiver("video", {direction: "recvonly"});
  pc.oniceconnectionstatechange = () => {
    const s = pc.iceConnectionState;
    const up = s === "connected" || s === "completed";
    if (up && b.ice === undefined) b.ice = performance.now() - b.t0;
  };
  pc.onconnectionstatechange = () => {
    const up = pc.connectionState === "connected";
    if (up && b.dtls === undefined) b.dtls = performance.now() - b.t0;
  };
  pc.ontrack = (e) => {
    video.srcObject = new MediaStream([e.track]);
    const onFrame = (now, meta) => {
      if (b.first === undefined) b.first = now - b.t0;
      if (b.record && meta.rtpTimestamp !== undefined) {
        b.frames.push([meta.rtpTimestamp, performance.timeOrigin + meta.expectedDisplayTime]);
      }
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((r) => {
    if (pc.iceGatheringState === "complete") r();
    pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && r();
  });
  b.t0 = performance.now();
  return pc.localDescription.sdp;
};
window.acceptAnswer = async (sdp) => {
  await window.bench.pc.setRemoteDescription({type: "answer", sdp});
  window.bench.answer = performance.now() - window.bench.t0;
};
window.addCandidate = (c) =>
  window.bench.pc.addIceCandidate(c === null ? null : {candidate: "candidate:" + c, sdpMid: "0"});
window.phases = () => {
  const b = window.bench;
  return {answer: b.answer, ice: b.ice, dtls: b.dtls, first: b.first};
};
</script></body></html>"""


class ChromiumMissing(RuntimeError):
    """No Chromium or no Playwright: the message says what to install."""


def chromium_path() -> str:
    for path in CHROMIUM_PATHS:
        if Path(path).exists():
            return path
    found = shutil.which("chromium")
    if found is None:
        raise ChromiumMissing("Chromium is not installed: apt-get install chromium")
    return found


@contextlib.asynccontextmanager
async def chromium_page() -> AsyncIterator[Any]:
    """One headless Chromium and a page of the bench, served from http://127.0.0.1."""
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        raise ChromiumMissing(
            "Playwright is not installed (a dev dependency): pip install -e '.[dev]'"
        ) from None
    executable = chromium_path()
    with tempfile.TemporaryDirectory(prefix="edgecam-bench-page-") as tmp:
        (Path(tmp) / "index.html").write_text(PAGE)
        site = ViewerServer(root=Path(tmp))
        await site.start()
        try:
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(
                    executable_path=executable, args=list(CHROMIUM_FLAGS), headless=True
                )
                try:
                    # The viewer server's CSP forbids inline scripts; the bench page is one.
                    context = await browser.new_context(bypass_csp=True)
                    await context.grant_permissions(["camera", "microphone"])
                    page = await context.new_page()
                    await page.goto(site.url)
                    yield page
                finally:
                    await browser.close()
        finally:
            await site.stop()


async def play(page: Any, sender: Child, client: str, session: str) -> None:
    """Offer from the page to ``sender``, apply its answer; the sender's trickled candidates
    go to the page after the answer (they may come before it)."""
    early: list[str | None] = []
    answered = False
    tasks: set[asyncio.Task[Any]] = set()

    def on_event(message: dict[str, Any]) -> None:
        if message.get("event") != "candidate" or message.get("session") != session:
            return
        if not answered:
            early.append(message["candidate"])
            return
        task = asyncio.create_task(
            page.evaluate("(c) => window.addCandidate(c)", message["candidate"])
        )
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    sender.on_event = on_event
    offer = await page.evaluate("window.startOffer()")
    answer = await sender.request("offer", client=client, session=session, sdp=offer)
    await page.evaluate("(sdp) => window.acceptAnswer(sdp)", answer["sdp"])
    answered = True
    for candidate in early:
        await page.evaluate("(c) => window.addCandidate(c)", candidate)


async def wait_for(page: Any, expression: str, timeout_s: float) -> None:
    await page.wait_for_function(expression, timeout=timeout_s * 1000)
