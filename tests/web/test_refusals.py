"""agent/web/refusals.js in Chromium: each broker refusal and JSON-RPC error becomes a sentence
that names the cause and what to do, and keeps the code for whoever reads it to an operator.

The sentences on a real broker and agent are checked in tests/e2e/test_viewer_hosting.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, Page

from agent.web.server import ViewerServer
from tests.infra.browsers import open_page

WHO = {
    "broker": "wss://mqtt.example:8884/",
    "username": "viewer-ann",
    "client": "viewer-ann",
    "device": "cam-01",
    "rpcTopic": "edgecam/+/rpc/viewer-ann",
}


@pytest.fixture
async def page(chromium: Browser) -> AsyncIterator[Page]:
    server = ViewerServer()
    base = await server.start()
    try:
        page = await open_page(chromium, base)
        yield page
    finally:
        await server.stop()


async def call(page: Page, name: str, *args: Any) -> Any:
    """refusals.js's `name` applied to `args`, in the page."""
    return await page.evaluate(
        "async ([name, args]) => (await import('./refusals.js'))[name](...args)", [name, args]
    )


async def test_connack_refusals_name_the_account_and_the_fix(page: Page) -> None:
    bad_password = await call(page, "connackSentence", 4, 4, WHO)
    assert bad_password.startswith('The broker refused the account "viewer-ann": wrong user')
    assert "return code 4: bad user name or password" in bad_password
    not_authorized = await call(page, "connackSentence", 0x87, 5, WHO)
    assert "password is wrong or the account is not in its password file" in not_authorized
    assert "reason code 135: not authorized" in not_authorized
    anonymous = await call(page, "connackSentence", 5, 4, {**WHO, "username": ""})
    assert "a login without a user name" in anonymous and "no anonymous clients" in anonymous
    client_id = await call(page, "connackSentence", 0x85, 5, WHO)
    assert 'client id "viewer-ann"' in client_id and "leave Client id empty" in client_id
    unavailable = await call(page, "connackSentence", 3, 4, WHO)
    assert "not taking clients now" in unavailable and WHO["broker"] in unavailable
    assert "banned" in await call(page, "connackSentence", 0x8A, 5, WHO)
    assert "another server" in await call(page, "connackSentence", 0x9C, 5, WHO)


async def test_only_version_trouble_is_retried_as_mqtt_311(page: Page) -> None:
    # No CONNACK at all (amqtt never answers some v5 CONNECTs) or "unsupported version": retry.
    assert await call(page, "worthV311", None) is True
    assert await call(page, "worthV311", 0x84) is True
    # A refusal of the account or client id would be the same over 3.1.1.
    for code in (0x85, 0x86, 0x87, 0x8A):
        assert await call(page, "worthV311", code) is False, code


async def test_a_websocket_that_never_opened_names_the_likely_causes(page: Page) -> None:
    wss = await call(page, "unreachableSentence", "wss://mqtt.example:8884/", "http:")
    assert wss.startswith("No MQTT connection to wss://mqtt.example:8884/: nothing answered")
    assert "TLS certificate" in wss and "open https://mqtt.example:8884/" in wss
    ws = await call(page, "unreachableSentence", "ws://10.0.0.2:9001/", "http:")
    assert "certificate" not in ws and "websockets listener" in ws
    mixed = await call(page, "unreachableSentence", "ws://10.0.0.2:9001/", "https:")
    assert "loaded over https" in mixed and "use wss://" in mixed
    plain = await call(page, "unreachableSentence", "mqtt://h:1883", "http:")
    assert "not a WebSocket URL" in plain
    assert "not a broker URL" in await call(page, "unreachableSentence", "my broker", "http:")


async def test_broker_refusals_of_a_connection_a_publish_and_a_subscribe(page: Page) -> None:
    taken = await call(page, "disconnectSentence", 0x8E, WHO)
    assert 'another connection logged in as "viewer-ann"' in taken and "another tab" in taken
    assert "shutting down" in await call(page, "disconnectSentence", 0x8B, WHO)
    unsaid = await call(page, "disconnectSentence", None, WHO)
    assert "without saying why" in unsaid and 'client id "viewer-ann" (another tab?)' in unsaid
    acl = await call(page, "pubackSentence", "edgecam/cam-01/rpc/viewer-x", 0x87, WHO)
    assert acl.startswith("The broker's ACL refused the request on edgecam/cam-01/rpc/viewer-x")
    assert "edgecam/+/rpc/viewer-ann" in acl and "use_username_as_clientid" in acl
    assert "reason code 135" in acl
    assert "sends too much" in await call(page, "pubackSentence", "t", 0x97, WHO)
    sub = await call(page, "subackSentence", "fleet/+/status", 0x80)
    assert "may not read it" in sub and "topic prefix" in sub and "128" in sub


async def test_every_protocol_error_code_reads_as_a_sentence(page: Page) -> None:
    async def rpc(code: int, message: str, data: Any = None, method: str = "webrtc.offer") -> str:
        sentence: str = await call(page, "rpcSentence", method, code, message, data, WHO)
        assert sentence.startswith("The device cam-01"), sentence
        assert f"({code} {message})" in sentence, sentence  # the device's own words, kept
        return sentence

    no_role = await rpc(-32001, "unauthorized: client has no role")
    assert 'client id "viewer-ann" matches none of its [access] patterns' in no_role
    needs = await rpc(-32001, "unauthorized: stream.set needs role operator", method="stream.set")
    assert 'refused stream.set for "viewer-ann": stream.set needs role operator' in needs
    full = await rpc(
        -32002, "busy: device viewer limit reached (8 sessions)", {"reason": "viewer_limit"}
    )
    assert "as many viewers as it allows" in full
    mine = await rpc(-32002, "busy: per-client limit reached", {"reason": "client_limit"})
    assert "another tab" in mine
    assert "shutting down" in await rpc(-32002, "busy", {"reason": "shutting_down"})
    assert "wait a few seconds" in await rpc(-32005, "too many offers; try again shortly")
    assert "press Play again" in await rpc(-32003, "unknown session")
    assert "no H.264 profile" in await rpc(-32004, "negotiation failed: no H.264 profile")
    assert "camera is not delivering" in await rpc(-32006, "camera unavailable")
    assert "params.session: bad" in await rpc(-32602, "invalid params: params.session: bad")
    assert "does not offer webrtc.offer" in await rpc(-32601, "method not found")
    assert "could not read" in await rpc(-32700, "parse error")
    assert "its log has the details" in await rpc(-32603, "internal error")


async def test_a_request_without_answer_says_what_the_page_knows(page: Page) -> None:
    offline = await call(page, "timeoutSentence", "webrtc.offer", "cam-01", {"state": "offline"}, 5)
    assert offline == (
        "webrtc.offer: no answer from cam-01: it is offline (its last status says so)."
    )
    unknown = await call(page, "timeoutSentence", "webrtc.offer", "cam-9", None, 5)
    assert "within 15 s" in unknown and "No status from cam-9" in unknown
    silent = await call(page, "timeoutSentence", "stream.get", "cam-01", {"state": "online"}, 4)
    assert "MQTT 3.1.1" in silent and "client id is the user name" in silent
