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
