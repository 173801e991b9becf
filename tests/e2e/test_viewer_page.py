"""The project's viewer page in Chromium: MQTT over WebSocket to mosquitto, H.264 from the agent."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from agent.runtime.app import Agent
from agent.web.server import ViewerServer, viewer_url
from tests.e2e.mqtt_rig import DEVICE
from tests.infra.browsers import launch_chromium, open_page, page_webrtc_stats
from tests.infra.mosquitto import MosquittoBroker
from tests.infra.pki import Pki

VIEWER, SECRET = "viewer-web", "web-secret"
OPERATOR, OPERATOR_SECRET = "ops-web", "ops-secret"


@pytest.fixture
def broker(tmp_path: Path, pki: Pki) -> Iterator[MosquittoBroker]:
    """The e2e broker, with password accounts for the two browser users."""
    accounts = {VIEWER: SECRET, OPERATOR: OPERATOR_SECRET}
    with MosquittoBroker(tmp_path / "broker", pki, viewers=accounts, bind_client_id=True) as b:
        yield b


@pytest.fixture
async def site() -> AsyncIterator[ViewerServer]:
    server = ViewerServer()
    await server.start()
    yield server
    await server.stop()


async def test_viewer_page_plays_60_h264_frames_over_mqtt_websocket(
    broker: MosquittoBroker, agent: Agent, site: ViewerServer
) -> None:
    url = viewer_url(
        site.url,
        broker=broker.ws_url,
        device=DEVICE,
        client=VIEWER,
        username=VIEWER,
        password=SECRET,
    )
    async with launch_chromium() as browser:
        page = await open_page(browser, url)
        await page.wait_for_function(
            "window.edgecam && window.edgecam.framesDecoded() >= 60", timeout=30_000
        )
        assert await page.evaluate("window.edgecam.state") == "connected"
        stats = await page_webrtc_stats(page, "window.edgecam.pc")
        inbound = next(s for s in stats if s.get("type") == "inbound-rtp")
        codec = next(s for s in stats if s.get("id") == inbound["codecId"])
        assert codec["mimeType"].lower() == "video/h264"
        assert inbound["framesDecoded"] >= 60
        # The page's controls speak the method table with the viewer's role.
        await page.evaluate("window.edgecam.rpc('stream.keyframe', {})")
        code = await page.evaluate(
            "window.edgecam.rpc('stream.set', {bitrate: 300000}).then(() => 0, (e) => e.code)"
        )
        assert code == -32001
        assert [row["client"] for row in agent.sessions.rows()] == [VIEWER]


async def test_operator_page_changes_bitrate_and_takes_a_snapshot(
    broker: MosquittoBroker, agent: Agent, site: ViewerServer
) -> None:
    url = viewer_url(
        site.url,
        broker=broker.ws_url,
        device=DEVICE,
        client=OPERATOR,
        username=OPERATOR,
        password=OPERATOR_SECRET,
    )
    async with launch_chromium() as browser:
        page = await open_page(browser, url)
        await page.wait_for_function(
            "window.edgecam && window.edgecam.framesDecoded() >= 10", timeout=30_000
        )
        stream = await page.evaluate("window.edgecam.rpc('stream.set', {bitrate: 300000})")
        assert stream["bitrate"] == 300_000
        snapshot = await page.evaluate("window.edgecam.rpc('camera.snapshot', {quality: 60})")
        assert snapshot["mime"] == "image/jpeg" and snapshot["width"] == 320


def _page_url(site: ViewerServer, broker: MosquittoBroker, client: str, secret: str) -> str:
    return viewer_url(
        site.url,
        broker=broker.ws_url,
        device=DEVICE,
        client=client,
        username=client,
        password=secret,
    )


# Sends 4 MiB on the control channel in messages of 256 KiB (what Chromium's a=max-message-size
# allows) while polling getStats; the agent answers each binary message with -32600.
BULK_WHILE_PLAYING = """
async () => {
  const channel = window.edgecam.control, pc = window.edgecam.pc;
  const decoded = async () => {
    let frames = 0;
    (await pc.getStats()).forEach((r) => {
      if (r.type === "inbound-rtp" && r.kind === "video") frames = r.framesDecoded;
    });
    return frames;
  };
  let refused = 0;
  channel.addEventListener("message", (e) => {
    if (typeof e.data === "string" && JSON.parse(e.data).error?.code === -32600) refused++;
  });
  const samples = [await decoded()];
  const started = performance.now();
  for (let i = 0; i < 16; i++) channel.send(new Uint8Array(256 * 1024).fill(i));
  while (refused < 16 && performance.now() - started < 30000) {
    await new Promise((r) => setTimeout(r, 100));
    samples.push(await decoded());
  }
  const seconds = (performance.now() - started) / 1000;
  for (let i = 0; i < 5; i++) {
    await new Promise((r) => setTimeout(r, 100));
    samples.push(await decoded());
  }
  return { refused, samples, seconds };
}
"""


async def test_viewer_page_uses_the_control_channel_and_video_plays_through_4_mib(
    broker: MosquittoBroker, agent: Agent, site: ViewerServer
) -> None:
    async with launch_chromium() as browser:
        page = await open_page(browser, _page_url(site, broker, VIEWER, SECRET))
        await page.wait_for_function(
            "window.edgecam && window.edgecam.control && window.edgecam.framesDecoded() >= 10",
            timeout=30_000,
        )
        assert await page.evaluate("document.body.dataset.control") == "datachannel"
        assert await page.evaluate("window.edgecam.controlRpc('stream.keyframe')") == {}
        stream = await page.evaluate("window.edgecam.controlRpc('stream.get')")
        assert stream["codec"] == "H264" and stream["width"] == 320
        code = await page.evaluate(
            "window.edgecam.controlRpc('stream.set', {bitrate: 300000}).then(() => 0, e => e.code)"
        )
        assert code == -32001
        # The page subscribed to session.stats when the channel opened, and shows them.
        await page.wait_for_function(
            "(window.edgecam.deviceStats().bitrate || 0) > 0", timeout=10_000
        )
        assert (await page.text_content("#dev-bitrate") or "").endswith("kbit/s")

        bulk = await page.evaluate(BULK_WHILE_PLAYING)
        assert bulk["refused"] == 16, bulk
        samples = bulk["samples"]
        # Frames kept being decoded: never 0.5 s (five polls) without a new one.
        assert samples[-1] > samples[0]
        stalls = [b - a for a, b in zip(samples, samples[5:], strict=False)]
        assert min(stalls) > 0, samples
        print(f"4 MiB Chromium -> agent on control: {bulk['seconds']:.2f} s; frames {samples}")


async def test_operator_page_takes_a_snapshot_over_the_control_channel(
    broker: MosquittoBroker, agent: Agent, site: ViewerServer
) -> None:
    async with launch_chromium() as browser:
        page = await open_page(browser, _page_url(site, broker, OPERATOR, OPERATOR_SECRET))
        await page.wait_for_function(
            "window.edgecam && window.edgecam.control && window.edgecam.framesDecoded() >= 10",
            timeout=30_000,
        )
        snapshot = await page.evaluate(
            "window.edgecam.controlRpc('camera.snapshot', {quality: 60})"
        )
        assert snapshot["mime"] == "image/jpeg" and snapshot["width"] == 320
        # The page's own Snapshot button goes over the channel now as well.
        await page.click("#snapshot")
        await page.wait_for_function("!document.getElementById('snapshot-figure').hidden")
