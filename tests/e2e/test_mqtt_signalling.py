"""The agent signalled over a real mosquitto (TLS, client certificates, ACL), viewed by aiortc."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl

import pytest

from agent.runtime.app import Agent
from tests.e2e.aiortc_viewer import AiortcViewer
from tests.e2e.mqtt_rig import (
    DEVICE,
    PREFIX,
    RpcClient,
    next_json,
    observer,
    watch,
)
from tests.infra.mosquitto import MosquittoBroker

STATUS = f"{PREFIX}/{DEVICE}/status"


async def test_aiortc_viewer_signals_over_mqtt_and_decodes(
    broker: MosquittoBroker, agent: Agent
) -> None:
    async with RpcClient(broker, "viewer-1") as client, observer(broker, STATUS) as obs:
        viewer = await watch(client, "s1")
        try:
            await viewer.wait_frames(30)
            status = await next_json(obs, STATUS, lambda s: s.get("viewers") == 1)
            assert status["state"] == "online" and status["device"] == DEVICE
            assert status["stream"]["codec"] == "H264"
            # The device told the viewer when its candidates were complete.
            await client.wait_for(
                lambda n: n["method"] == "webrtc.candidate" and n["params"]["candidate"] is None
            )
            rows = await RpcClient(broker, "ops-1").__aenter__()
            try:
                sessions = await rows.call("session.list")
            finally:
                await rows.__aexit__()
            assert [(s["client"], s["session"], s["state"]) for s in sessions] == [
                ("viewer-1", "s1", "connected")
            ]
            assert sessions[0]["bytes_sent"] > 0
            assert await client.call("webrtc.close", {"session": "s1"}) == {}
            await client.wait_state("s1", "closed")
        finally:
            await viewer.close()


async def test_candidates_sent_before_the_offer_are_kept(
    broker: MosquittoBroker, agent: Agent
) -> None:
    async with RpcClient(broker, "viewer-1") as client:
        viewer = AiortcViewer()
        offer = await viewer.offer()
        # Trickle first (aiortc puts them in the SDP; strip them to make the point).
        lines = offer.splitlines()
        candidates = [line[2:] for line in lines if line.startswith("a=candidate:")]
        bare = "\r\n".join(line for line in lines if not line.startswith("a=candidate:")) + "\r\n"
        for candidate in candidates:
            await client.notify(
                "webrtc.candidate",
                {"session": "early", "candidate": candidate, "sdpMid": "0", "sdpMLineIndex": 0},
            )
        result = await client.call("webrtc.offer", {"session": "early", "sdp": bare})
        try:
            await viewer.accept(result["sdp"])
            await client.wait_state("early", "connected")
            await viewer.wait_frames(10)
        finally:
            await viewer.close()


async def test_roles_are_enforced(broker: MosquittoBroker, agent: Agent) -> None:
    async with (
        RpcClient(broker, "viewer-1") as viewer,
        RpcClient(broker, "ops-1") as ops,
        RpcClient(broker, "admin-1") as admin,
        RpcClient(broker, "stranger") as stranger,
    ):
        denied = await viewer.request("stream.set", {"bitrate": 400_000})
        assert denied["error"]["code"] == -32001
        assert (await stranger.request("device.status"))["error"]["code"] == -32001
        assert (await viewer.request("config.get"))["error"]["code"] == -32001
        assert (await ops.request("config.get"))["error"]["code"] == -32001

        stream = await ops.call("stream.set", {"bitrate": 400_000})
        assert stream["bitrate"] == 400_000
        assert (await viewer.call("stream.get"))["bitrate"] == 400_000
        assert (await viewer.call("device.status"))["state"] == "online"
        assert await viewer.call("stream.keyframe") == {}

        snapshot = await ops.call("camera.snapshot", {"quality": 70})
        assert snapshot["mime"] == "image/jpeg" and snapshot["width"] == 320
        config = await admin.call("config.get")
        assert config["device"]["id"] == DEVICE
        assert "key" in config["mqtt"]  # the path, never the key itself
        changed = await admin.call("config.set", {"webrtc": {"max_viewers": 3}})
        assert changed["webrtc"]["max_viewers"] == 3
        bad = await admin.request("config.set", {"webrtc": {"max_viewers": "many"}})
        assert bad["error"]["code"] == -32602 and "webrtc.max_viewers" in bad["error"]["message"]


async def test_bad_input_gets_errors_while_a_session_keeps_streaming(
    broker: MosquittoBroker, agent: Agent
) -> None:
    async with RpcClient(broker, "viewer-1") as client:
        viewer = await watch(client, "live")
        try:
            await viewer.wait_frames(5)
            before = viewer.frames
            parse = await client.raw_request(b'{"jsonrpc":"2.0","id":7,"method":', 7)
            assert parse["error"]["code"] == -32700
            big = (
                b'{"jsonrpc":"2.0","id":8,"method":"device.status","params":{"x":"'
                + b"a" * 70_000
                + b'"}}'
            )
            too_large = await client.raw_request(big, 8)
            assert too_large["error"]["code"] == -32600
            await client.publish(b"\xff\xfe not json at all")  # no id: dropped, logged
            unknown = await client.request("no.such.method")
            assert unknown["error"]["code"] == -32601
            bad_sdp = await client.request("webrtc.offer", {"session": "x", "sdp": "v=0\r\nnope"})
            assert bad_sdp["error"]["code"] == -32004
            no_h264 = await client.request(
                "webrtc.offer",
                {
                    "session": "y",
                    "sdp": (await AiortcViewer().offer()).replace("H264/90000", "H265/90000"),
                },
            )
            assert no_h264["error"]["code"] == -32004
            assert "H.264" in no_h264["error"]["message"]
            bad_id = await client.request("webrtc.offer", {"session": "no spaces", "sdp": "v=0"})
            assert (
                bad_id["error"]["code"] == -32602 and "params.session" in bad_id["error"]["message"]
            )
            unknown_session = await client.request("webrtc.close", {"session": "nope"})
            assert unknown_session["error"]["code"] == -32003
            # The live session never noticed.
            await viewer.wait_frames(before + 30)
            assert agent.sessions.count == 1
        finally:
            await viewer.close()


def _mqtt_connect(client_id: str) -> bytes:
    """An MQTT 3.1.1 CONNECT packet: clean session, 60 s keepalive."""
    name = client_id.encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(name).to_bytes(2, "big") + name
    return bytes([0x10, len(body)]) + body


# What the TLS listener may say to a client without a certificate: a handshake_failure alert
# (TLS 1.2), certificate_required (TLS 1.3), or, once a TLS 1.3 handshake has completed on the
# client's side, a connection closed or reset right away.
REFUSAL_ALERTS = {"SSLV3_ALERT_HANDSHAKE_FAILURE", "TLSV13_ALERT_CERTIFICATE_REQUIRED"}
CONNACK_ACCEPTED = b"\x20\x02\x00\x00"


async def _broker_answer(broker: MosquittoBroker, cn: str | None) -> str | bytes:
    """The broker's first answer to a CONNECT from a client with certificate `cn` (None: none):
    the MQTT bytes it sends, or how TLS refused. Fails on anything slower than a refusal."""
    context = broker.client_tls_context(cn)
    # Prompt either way: a hung broker fails the test here, not after a client's own timeout.
    async with asyncio.timeout(5):
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", broker.tls_port, ssl=context
            )
        except ssl.SSLError as exc:
            assert exc.reason in REFUSAL_ALERTS, exc
            return f"handshake refused: {exc.reason}"
        try:
            writer.write(_mqtt_connect(cn or "viewer-9"))
            answer = await reader.read(len(CONNACK_ACCEPTED))
        except ssl.SSLError as exc:
            assert exc.reason in REFUSAL_ALERTS, exc
            return f"refused: {exc.reason}"
        except ConnectionResetError:
            return "refused: connection reset"
        finally:
            writer.close()
    return answer or "refused: connection closed"


async def test_broker_acl_and_certificates(broker: MosquittoBroker, agent: Agent) -> None:
    # No client certificate: the TLS listener refuses at once; with one, the same CONNECT is
    # accepted (so the refusal is the certificate's doing, not the probe's).
    refusal = await _broker_answer(broker, None)
    assert isinstance(refusal, str) and refusal.startswith(("refused", "handshake refused"))
    assert await _broker_answer(broker, "viewer-9") == CONNACK_ACCEPTED
    async with RpcClient(broker, "viewer-1") as one, RpcClient(broker, "viewer-2") as two:
        assert one.client is not None
        # viewer-1 may neither speak for viewer-2 nor read viewer-2's replies.
        await one.client.subscribe(two.reply_topic, qos=1)
        forged = {"jsonrpc": "2.0", "id": 99, "method": "device.status", "params": {}}
        await one.publish(json.dumps(forged).encode(), topic=two.request_topic)
        answer = await two.request("device.status")  # sentinel: this one is delivered
        assert answer["result"]["device"] == DEVICE
        # Only the sentinel's reply reached viewer-2 (none for the forged id 99)...
        assert all(n.get("id") != 99 for n in two.notifications)
        # ...and viewer-1 saw nothing of viewer-2's replies.
        await one.call("device.status")
        assert one.other == []


async def test_broker_restart_keeps_video_and_the_agent_comes_back(
    broker: MosquittoBroker, agent: Agent
) -> None:
    client = await RpcClient(broker, "viewer-1").__aenter__()
    viewer = await watch(client, "s1")
    try:
        await viewer.wait_frames(5)
        disconnected = asyncio.Event()
        agent.mqtt._on_disconnect = lambda reason: disconnected.set()
        broker.kill()
        await asyncio.wait_for(disconnected.wait(), 20)
        frames_when_broker_died = viewer.frames
        await viewer.wait_frames(frames_when_broker_died + 60)  # video flows on
        assert not agent.mqtt.connected
        broker.start()
        await agent.mqtt.wait_connected(30)
        async with observer(broker, STATUS) as obs:
            status = await next_json(obs, STATUS, lambda s: True)
            assert status["state"] == "online" and status["viewers"] == 1
        async with RpcClient(broker, "viewer-2") as second:
            newcomer = await watch(second, "s2")
            try:
                await newcomer.wait_frames(10)
            finally:
                await newcomer.close()
    finally:
        await viewer.close()
        await client.__aexit__()


async def test_viewer_limit(broker: MosquittoBroker, agent: Agent) -> None:
    async with RpcClient(broker, "admin-1") as admin, RpcClient(broker, "viewer-1") as client:
        await admin.call("config.set", {"webrtc": {"max_viewers": 1}})
        viewer = await watch(client, "one")
        try:
            second = AiortcViewer()
            busy = await client.request(
                "webrtc.offer", {"session": "two", "sdp": await second.offer()}
            )
            await second.close()
            assert busy["error"]["code"] == -32002
        finally:
            await viewer.close()


class AgentClock:
    """The agent's clock for its offer limiter, moved by the test (the limiter's only input
    besides the client id is `now`, so the refill is checked exactly, in no wall time)."""

    def __init__(self) -> None:
        self.time = 1000.0

    def now(self) -> float:
        return self.time


async def _offer_codes(client: RpcClient, count: int) -> list[int]:
    """Error codes of `count` offers with a bad SDP: -32004 while allowed, -32005 once limited."""
    codes = []
    for _ in range(count):
        reply = await client.request("webrtc.offer", {"session": "x", "sdp": "v=0"})
        codes.append(reply["error"]["code"])
    return codes


async def test_offer_rate_limit_follows_the_config_and_its_live_reload(
    broker: MosquittoBroker, agent: Agent, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = AgentClock()
    monkeypatch.setattr(agent, "now", clock.now)
    allowed, limited = -32004, -32005  # the SDP is bad, so an allowed offer fails negotiation
    async with RpcClient(broker, "admin-1") as admin, RpcClient(broker, "viewer-1") as client:
        # The file's limit (mqtt_rig: 20 offers per 10 s per client): a burst of 20, then
        # one more every 0.5 s.
        assert agent.config.webrtc.offer_rate_limit.count == 20
        assert await _offer_codes(client, 21) == [allowed] * 20 + [limited]
        clock.time += 0.45
        assert await _offer_codes(client, 1) == [limited]
        clock.time += 0.1
        assert await _offer_codes(client, 2) == [allowed, limited]

        # Changed over config.set, applied at once: 2 offers per minute.
        changed = await admin.call(
            "config.set", {"webrtc": {"offer_rate_limit": {"count": 2, "period": 60}}}
        )
        assert changed["webrtc"]["offer_rate_limit"] == {"count": 2, "period": 60.0}
        assert await _offer_codes(client, 3) == [allowed, allowed, limited]
        clock.time += 29.0  # 2 per second would have refilled by now; 2 per minute has not
        assert await _offer_codes(client, 1) == [limited]
        clock.time += 1.5
        assert await _offer_codes(client, 2) == [allowed, limited]
        # Per client: another client has its own bucket.
        assert await _offer_codes(admin, 3) == [allowed, allowed, limited]


async def test_the_answer_comes_before_any_notification_about_its_session(
    broker: MosquittoBroker, agent: Agent
) -> None:
    async with RpcClient(broker, "viewer-1") as client:
        viewer = await watch(client, "s1")
        try:
            offer_reply = client.arrivals.index("response")
            assert client.arrivals[:offer_reply] == []  # PROTOCOL.md section 4: answer first
            assert "webrtc.state" in client.arrivals[offer_reply:]
        finally:
            await viewer.close()


async def test_an_oversized_request_is_refused_by_its_id_wherever_the_id_is(
    broker: MosquittoBroker, agent: Agent
) -> None:
    async with RpcClient(broker, "viewer-1") as client:
        big = json.dumps(
            {
                "jsonrpc": "2.0",
                "method": "webrtc.offer",
                "params": {"session": "s", "sdp": "a" * 70_000},
                "id": 41,
            }
        ).encode()
        assert (await client.raw_request(big, 41))["error"]["code"] == -32600
        # Far past any request's size: dropped unread, and the agent carries on.
        await client.publish(b'{"jsonrpc":"2.0","id":42,"params":"' + b"b" * 2_000_000 + b'"}')
        assert (await client.call("device.status"))["state"] == "online"


async def test_a_retained_request_is_not_run_again_on_reconnect(
    broker: MosquittoBroker, agent: Agent
) -> None:
    async with RpcClient(broker, "viewer-1") as client:
        assert client.client is not None
        retained = {"jsonrpc": "2.0", "id": 77, "method": "stream.keyframe", "params": {}}
        await client.client.publish(
            client.request_topic, json.dumps(retained).encode(), qos=1, retain=True
        )
        # Run once, live...
        await client.wait_for_response(77)
        # ...and not again when the device resubscribes after losing its connection.
        reconnected = asyncio.Event()
        agent.mqtt._on_connect = reconnected.set
        sock = agent.mqtt._paho.socket()
        assert sock is not None
        sock.shutdown(socket.SHUT_RDWR)
        await asyncio.wait_for(reconnected.wait(), 30)
        await client.call("device.status")  # a sentinel after the resubscription
        assert client.responses_for(77) == 1
