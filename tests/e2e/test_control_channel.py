"""The `control` datachannel with aiortc against the whole agent (real mosquitto, MQTT offer)."""

from __future__ import annotations

import asyncio
import json

from agent.runtime.app import Agent
from tests.e2e.aiortc_viewer import AiortcViewer
from tests.e2e.channel_peer import ControlClient
from tests.e2e.mqtt_rig import RpcClient
from tests.infra.mosquitto import MosquittoBroker


async def _open_control(
    client: RpcClient, session: str, *, video: bool
) -> tuple[AiortcViewer, ControlClient, str]:
    viewer = AiortcViewer(datachannel=True, video=video)
    assert viewer.channel is not None
    control = ControlClient(viewer.channel)
    result = await client.call("webrtc.offer", {"session": session, "sdp": await viewer.offer()})
    await viewer.accept(result["sdp"])
    await asyncio.wait_for(control.inbox.opened.wait(), 30)
    return viewer, control, result["sdp"]


async def test_stream_get_over_control_is_answered_and_viewer_may_not_set(
    broker: MosquittoBroker, agent: Agent
) -> None:
    async with RpcClient(broker, "viewer-1") as client:
        viewer, control, answer = await _open_control(client, "s1", video=True)
        try:
            assert "m=video" in answer and "m=application" in answer
            over_mqtt = await client.call("stream.get")
            assert await control.call("stream.get") == over_mqtt
            assert over_mqtt["width"] == 320
            refused = await control.request("stream.set", {"bitrate": 300_000})
            assert refused["error"]["code"] == -32001
            # webrtc.* is MQTT-only (PROTOCOL.md 4): not found on the channel.
            offer = await control.request("webrtc.close", {"session": "s1"})
            assert offer["error"]["code"] == -32601
            await viewer.wait_frames(10)
        finally:
            await viewer.close()


async def test_datachannel_only_offer_gets_datachannel_only_answer(
    broker: MosquittoBroker, agent: Agent
) -> None:
    async with RpcClient(broker, "viewer-2") as client:
        viewer, control, answer = await _open_control(client, "dc", video=False)
        try:
            assert "m=video" not in answer and "m=application" in answer
            status = await control.call("device.status")
            assert status["device"] == "cam-01" and status["viewers"] == 1
            assert agent.fanout.sink_count == 0  # no video, so not fed frames
        finally:
            await viewer.close()


async def test_operator_gets_stream_changed_and_session_stats_on_control(
    broker: MosquittoBroker, agent: Agent
) -> None:
    async with RpcClient(broker, "ops-1") as client:
        viewer, control, _ = await _open_control(client, "s1", video=True)
        try:
            subscribed = await control.call(
                "session.subscribe_stats", {"session": "s1", "interval": 0.3}
            )
            assert subscribed == {}
            stats = await control.wait_notification("session.stats", count=3)
            latest = stats[-1]["params"]
            assert latest["session"] == "s1"
            assert latest["bitrate"] > 0 and latest["fps"] > 0 and latest["frames_sent"] > 0
            assert {"rtt", "fraction_lost", "nacks", "keyframes", "keyframe_requests"} <= set(
                latest
            )

            applied = await control.call("stream.set", {"bitrate": 400_000})
            assert applied["bitrate"] == 400_000
            changed = await control.wait_notification("stream.changed")
            assert changed[0]["params"]["stream"]["bitrate"] == 400_000

            # Another client's session id is not ours to subscribe to.
            other = await control.request("session.subscribe_stats", {"session": "nope"})
            assert other["error"]["code"] == -32003
            snapshot = await control.call("camera.snapshot", {"quality": 50})
            assert snapshot["mime"] == "image/jpeg" and snapshot["width"] == 320
        finally:
            await viewer.close()


async def test_binary_and_garbage_on_control_get_errors_not_a_dead_session(
    broker: MosquittoBroker, agent: Agent
) -> None:
    async with RpcClient(broker, "viewer-3") as client:
        viewer, control, _ = await _open_control(client, "s1", video=False)
        try:
            control.channel.send(b"\x00\x01binary")
            control.channel.send("{not json")
            await control.inbox.wait_count(2)
            codes = sorted(json.loads(m)["error"]["code"] for m in control.inbox.messages)
            assert codes == [-32700, -32600]
            assert (await control.call("stream.get"))["codec"] == "H264"
        finally:
            await viewer.close()
