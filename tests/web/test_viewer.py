"""agent/web/viewer.js in headless Chromium: loads cleanly, reads its query string, reports a
broker it cannot reach, and lists devices from their retained status (as text, never HTML).

The page's signalling with a real agent is covered by the end-to-end tests.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from amqtt.broker import Broker
from playwright.async_api import Browser, Page

from agent.web.server import VENDOR_MQTT, WEB_ROOT, ViewerServer, viewer_url
from tests.infra.browsers import chromium, open_page  # noqa: F401
from tests.infra.mosquitto import MosquittoBroker
from tests.infra.pki import Pki, pki  # noqa: F401
from tests.infra.tools import free_port

WAIT_MS = 10_000


class PageProblems:
    """Uncaught exceptions and console output of one page."""

    def __init__(self, page: Page) -> None:
        self.uncaught: list[str] = []
        self.console: list[str] = []
        self.console_errors: list[str] = []
        page.on("pageerror", lambda exc: self.uncaught.append(str(exc)))
        page.on("console", self._console)

    def _console(self, message: Any) -> None:
        self.console.append(message.text)
        if message.type == "error":
            self.console_errors.append(message.text)


@pytest.fixture
async def viewer_base() -> AsyncIterator[str]:
    if not (WEB_ROOT / VENDOR_MQTT).is_file():
        pytest.fail(f"{WEB_ROOT / VENDOR_MQTT} missing: run `make web-deps`", pytrace=False)
    server = ViewerServer()
    try:
        yield await server.start()
    finally:
        await server.stop()


async def load(browser: Browser, url: str) -> tuple[Page, PageProblems]:
    page = await open_page(browser)
    problems = PageProblems(page)
    await page.goto(url)
    await page.wait_for_function("document.body.dataset.ready === '1'", timeout=WAIT_MS)
    return page, problems


async def test_page_loads_without_errors_and_shows_the_form(
    chromium: Browser, viewer_base: str  # noqa: F811
) -> None:
    page, problems = await load(chromium, viewer_base)

    for label in ("Broker URL", "Username", "Password", "Client id", "Device", "Topic prefix"):
        assert await page.get_by_label(label, exact=True).is_visible(), label
    assert await page.get_by_role("button", name="Connect", exact=True).is_enabled()
    assert await page.get_by_role("button", name="Play").is_disabled()
    assert await page.evaluate("typeof mqtt.connect") == "function"
    hooks = await page.evaluate(
        "({state: edgecam.state, broker: edgecam.broker, pc: edgecam.pc,"
        " error: edgecam.lastError, frames: edgecam.framesDecoded(), stats: edgecam.stats(),"
        " body: document.body.dataset.state})"
    )
    assert hooks == {"state": "idle", "broker": "disconnected", "pc": None, "error": None,
                     "frames": 0, "stats": {}, "body": "idle"}
    # Left empty: the client id is the user name at connect time (brokers that pin the ACL to
    # accounts impose it), or a random viewer-... without one.
    assert await page.get_by_label("Client id").input_value() == ""
    assert "user name" in (await page.get_by_label("Client id").get_attribute("placeholder") or "")
    assert problems.uncaught == [] and problems.console_errors == []


async def test_query_string_fills_the_form_and_connects_only_with_autoplay(
    chromium: Browser, viewer_base: str  # noqa: F811
) -> None:
    url = viewer_url(
        viewer_base, broker="ws://127.0.0.1:9/", username="viewer-7", password="s3cret",
        client="viewer-7", device="cam-01", prefix="fleet", autoplay=False,
    )
    page, problems = await load(chromium, url)

    values = {
        label: await page.get_by_label(label, exact=True).input_value()
        for label in ("Broker URL", "Username", "Password", "Client id", "Device", "Topic prefix")
    }
    assert values == {
        "Broker URL": "ws://127.0.0.1:9/", "Username": "viewer-7", "Password": "s3cret",
        "Client id": "viewer-7", "Device": "cam-01", "Topic prefix": "fleet",
    }
    assert await page.evaluate("edgecam.broker") == "disconnected"
    assert problems.uncaught == [] and problems.console_errors == []


async def test_autoplay_reports_a_broker_it_cannot_reach(
    chromium: Browser, viewer_base: str  # noqa: F811
) -> None:
    broker = f"ws://127.0.0.1:{free_port()}/"
    page, problems = await load(chromium, viewer_url(viewer_base, broker=broker, device="cam-01"))

    await page.wait_for_function("edgecam.broker === 'error'", timeout=WAIT_MS)
    error = await page.evaluate("edgecam.lastError")
    assert error["where"] == "broker"
    assert error["message"].startswith(f"No MQTT connection to {broker}: nothing answered")
    assert broker in await page.locator("#broker-error").inner_text()
    assert await page.evaluate("edgecam.state") == "idle"  # it never got as far as an offer
    assert problems.uncaught == []


async def test_devices_are_listed_from_retained_status_as_plain_text(
    chromium: Browser, viewer_base: str, tmp_path: Path, pki: Pki  # noqa: F811
) -> None:
    hostile = "<img src=x onerror=window.pwned=1>"
    with MosquittoBroker(tmp_path / "mosquitto", pki, viewers={"viewer-1": "pw"}) as broker:
        for device, status in [
            ("cam-01", {"state": "online", "device": "cam-01", "viewers": 2, "stream": {
                "codec": hostile, "width": 1280, "height": 720, "framerate": 30,
                "bitrate": 2_000_000}}),
            ("cam-02", {"state": "offline", "device": "cam-02"}),
        ]:
            async with aiomqtt.Client(
                "127.0.0.1", broker.tls_port, identifier=device,
                tls_context=broker.client_tls_context(device),
            ) as client:
                await client.publish(f"edgecam/{device}/status", json.dumps(status), qos=1,
                                     retain=True)
        # No client id given: the page uses the user name, as the broker's ACL expects.
        url = viewer_url(viewer_base, broker=broker.ws_url, username="viewer-1", password="pw",
                         device="", autoplay=False)
        page, problems = await load(chromium, url)
        await page.get_by_role("button", name="Connect", exact=True).click()
        await page.wait_for_function("edgecam.devices().length === 2", timeout=WAIT_MS)

        status = await page.locator("#broker-status").inner_text()
        assert status == "connected (MQTT 5, client id viewer-1)"
        assert await page.evaluate("[edgecam.clientId, edgecam.clientSource]") == [
            "viewer-1", "username"]
        items = page.locator("#devices li")
        first, second = await items.nth(0).inner_text(), await items.nth(1).inner_text()
        assert "cam-01" in first and "online" in first and "2 viewer(s)" in first
        assert hostile in first and "1280\N{MULTIPLICATION SIGN}720" in first
        assert "cam-02" in second and "offline" in second
        assert await page.locator("#devices img").count() == 0
        assert await page.evaluate("window.pwned") is None
        assert await page.get_by_role("button", name="Watch cam-01").is_enabled()
        assert await page.get_by_role("button", name="Watch cam-02").is_disabled()
        assert problems.uncaught == [] and problems.console_errors == []


async def test_refused_credentials_are_reported_without_a_protocol_fallback(
    chromium: Browser, viewer_base: str, tmp_path: Path, pki: Pki  # noqa: F811
) -> None:
    with MosquittoBroker(tmp_path / "mosquitto", pki, viewers={"viewer-1": "pw"}) as broker:
        url = viewer_url(viewer_base, broker=broker.ws_url, username="viewer-1",
                         password="wrong", client="viewer-1", device="cam-01")
        page, problems = await load(chromium, url)
        await page.wait_for_function("edgecam.broker === 'error'", timeout=WAIT_MS)
        error = await page.evaluate("edgecam.lastError")

    assert error["where"] == "broker"
    assert error["message"].startswith('The broker refused the account "viewer-1":')
    assert "password" in error["message"] and "code 135" in error["message"]
    assert error["message"] in await page.locator("#broker-error").inner_text()
    # Refused credentials are final: no second attempt as MQTT 3.1.1.
    assert not [line for line in problems.console if "3.1.1" in line]
    assert problems.uncaught == []


async def test_a_broker_without_mqtt5_is_used_over_mqtt311(
    chromium: Browser, viewer_base: str  # noqa: F811
) -> None:
    # amqtt (the demo's embedded broker) refuses an MQTT 5 CONNECT.
    ws_port = free_port()
    broker = Broker({
        "listeners": {"default": {"type": "ws", "bind": f"127.0.0.1:{ws_port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    })
    await broker.start()
    try:
        url = viewer_url(viewer_base, broker=f"ws://127.0.0.1:{ws_port}", device="", autoplay=False)
        page, problems = await load(chromium, url)
        await page.get_by_role("button", name="Connect", exact=True).click()
        await page.wait_for_function("edgecam.broker !== 'connecting'", timeout=WAIT_MS)
        status = await page.locator("#broker-status").inner_text()
        client = await page.evaluate("[edgecam.clientId, edgecam.clientSource]")
    finally:
        await broker.shutdown()
    # No user name: a random client id (the broker takes anonymous clients).
    assert client[1] == "random" and client[0].startswith("viewer-")
    assert status == f"connected (MQTT 3.1.1, client id {client[0]})"
    assert problems.uncaught == [] and problems.console_errors == []
