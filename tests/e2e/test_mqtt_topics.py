"""Telemetry and events topics, and per-offer ICE servers, over a real mosquitto."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from agent.runtime.app import Agent
from tests.e2e.aiortc_viewer import AiortcViewer
from tests.e2e.mqtt_rig import DEVICE, PREFIX, RpcClient, next_json, observer, watch
from tests.infra.mosquitto import MosquittoBroker

TELEMETRY = f"{PREFIX}/{DEVICE}/telemetry"
EVENTS = f"{PREFIX}/{DEVICE}/events"


async def test_events_and_telemetry_follow_a_session(broker: MosquittoBroker, agent: Agent) -> None:
    async with observer(broker, TELEMETRY, EVENTS) as obs, RpcClient(broker, "viewer-1") as client:
        viewer = await watch(client, "s1")
        try:
            opened = await next_json(obs, EVENTS, lambda e: e["event"] == "session.opened")
            assert opened["session"] == "s1" and opened["client"] == "viewer-1"
            assert isinstance(opened["ts"], float)
            await viewer.wait_frames(15)
            telemetry = await next_json(
                obs, TELEMETRY, lambda t: t["viewers"] == 1 and t["bitrate_out"] > 0
            )
            assert telemetry["frames_in"] > 0
            assert [s["session"] for s in telemetry["sessions"]] == ["s1"]
            await client.call("webrtc.close", {"session": "s1"})
            closed = await next_json(obs, EVENTS, lambda e: e["event"] == "session.closed")
            assert closed["session"] == "s1" and "reason" in closed
        finally:
            await viewer.close()


async def test_config_and_stream_changes_are_events_and_secrets_stay_out(
    broker: MosquittoBroker, agent: Agent
) -> None:
    async with observer(broker, EVENTS) as obs, RpcClient(broker, "admin-1") as admin:
        await admin.call("config.set", {"telemetry": {"interval": 2.0}, "mqtt": {"keepalive": 45}})
        event = await next_json(obs, EVENTS, lambda e: e["event"] == "config.changed")
        assert event["keys"] == ["mqtt", "telemetry"]
        assert event["restart_required"] == ["mqtt.keepalive"]
        await admin.call("stream.set", {"bitrate": 350_000})
        changed = await next_json(obs, EVENTS, lambda e: e["event"] == "stream.changed")
        assert changed["stream"]["bitrate"] == 350_000
        # Saved atomically for the next start, and readable only by the agent.
        override = Path(agent.config.device.state_dir) / "config.override.toml"
        assert "keepalive = 45" in override.read_text()
        assert override.stat().st_mode & 0o077 == 0
        config = await admin.call("config.get")
        assert "BEGIN" not in json.dumps(config)  # paths only, never key material


async def test_per_offer_ice_servers_are_validated(broker: MosquittoBroker, agent: Agent) -> None:
    async with RpcClient(broker, "ops-1") as client, RpcClient(broker, "viewer-1") as plain:
        viewer = AiortcViewer()
        try:
            sdp = await viewer.offer()
            # Servers the device would connect to on a client's word: operators only.
            denied = await plain.request(
                "webrtc.offer", {"session": "t", "sdp": sdp, "ice_servers": [{"urls": "stun:x"}]}
            )
            assert denied["error"]["code"] == -32001
            assert "ice_servers" in denied["error"]["message"]
            no_credential = await client.request(
                "webrtc.offer",
                {"session": "t", "sdp": sdp, "ice_servers": [{"urls": ["turn:127.0.0.1:3478"]}]},
            )
            assert no_credential["error"]["code"] == -32602
            assert "params.ice_servers" in no_credential["error"]["message"]
            bad_url = await client.request(
                "webrtc.offer",
                {"session": "t", "sdp": sdp, "ice_servers": [{"urls": ["http://x"]}]},
            )
            assert bad_url["error"]["code"] == -32602
            # A STUN server for this session only: accepted (unreachable here, so it yields
            # no candidate, and host candidates still connect).
            result = await client.call(
                "webrtc.offer",
                {"session": "t", "sdp": sdp, "ice_servers": [{"urls": "stun:127.0.0.1:9"}]},
            )
            await viewer.accept(result["sdp"])
            await client.wait_state("t", "connected")
        finally:
            await viewer.close()


async def test_resolution_change_reaches_a_live_viewer(
    broker: MosquittoBroker, agent: Agent
) -> None:
    async with RpcClient(broker, "ops-1") as ops:
        viewer = await watch(ops, "s")
        try:
            await viewer.wait_frames(5)
            stream = await ops.call("stream.set", {"width": 480, "height": 272, "framerate": 15})
            assert (stream["framerate"], stream["bitrate"]) == (15, 500_000)
            before = viewer.frames
            await viewer.wait_frames(before + 20)
            assert (480, 272) in viewer.sizes
            info = await ops.call("stream.get")
            assert (info["width"], info["height"]) == (480, 272)
            odd = await ops.request("stream.set", {"width": 481})
            assert odd["error"]["code"] == -32602 and "params.width" in odd["error"]["message"]
        finally:
            await viewer.close()


async def test_a_config_change_the_device_cannot_carry_out_is_not_saved(
    broker: MosquittoBroker, agent: Agent
) -> None:
    override = Path(agent.config.device.state_dir) / "config.override.toml"
    async with RpcClient(broker, "admin-1") as admin:
        typo = {"camera": {"source": "file", "path": "/nonexistent/typo.mp4"}}
        refused = await admin.request("config.set", typo)
        assert refused["error"]["code"] == -32006
        assert "typo.mp4" in refused["error"]["message"]
        stuns = {"webrtc": {"ice_servers": [{"urls": ["stuns:stun.example:5349"]}]}}
        invalid = await admin.request("config.set", stuns)
        assert invalid["error"]["code"] == -32602 and "stuns:" in invalid["error"]["message"]
        # Nothing reached the disk, so the next start uses the config that works; the
        # camera kept running.
        assert not override.exists() or "typo" not in override.read_text()
        assert (await admin.call("stream.get"))["width"] == 320


async def test_concurrent_config_changes_do_not_undo_each_other(
    broker: MosquittoBroker, agent: Agent
) -> None:
    async with RpcClient(broker, "admin-1") as one, RpcClient(broker, "admin-2") as two:
        # The first restarts the camera (slow), the second lands meanwhile.
        await asyncio.gather(
            one.call("config.set", {"camera": {"width": 256, "height": 192}}),
            two.call("config.set", {"access": {"viewer": ["viewer-*", "kiosk-*"]}}),
        )
        config = await one.call("config.get")
        assert config["camera"]["width"] == 256
        assert config["access"]["viewer"] == ["viewer-*", "kiosk-*"]
        assert agent.config.access.role_for("kiosk-7") is not None


async def test_a_viewer_keeps_playing_across_a_bitrate_change_and_a_camera_restart(
    broker: MosquittoBroker, agent: Agent
) -> None:
    async with (
        RpcClient(broker, "viewer-1") as client,
        RpcClient(broker, "ops-1") as ops,
        observer(broker, EVENTS) as obs,
    ):
        viewer = await watch(client, "across")
        try:
            await viewer.wait_frames(10)
            applied = await ops.call("stream.set", {"bitrate": 300_000})
            assert applied["bitrate"] == 300_000
            await viewer.wait_frames(viewer.frames + 15)  # decoded after the live change
            source = agent.camera.source
            assert source is not None
            source.stop()  # the camera dies under a live viewer; the supervisor restarts it
            await next_json(obs, EVENTS, lambda e: e["event"] == "camera.recovered", timeout=30)
            await viewer.wait_frames(viewer.frames + 15)  # and the same session plays on
            assert agent.camera.source is not source
        finally:
            await viewer.close()


async def test_a_camera_that_stops_is_reported_and_restarted(
    broker: MosquittoBroker, agent: Agent
) -> None:
    async with observer(broker, EVENTS) as obs:
        source = agent.camera.source
        assert source is not None
        source.stop()  # the camera stops delivering frames
        event = await next_json(obs, EVENTS, lambda e: e["event"] == "camera.error", timeout=20)
        assert "no frame" in event["message"]
        # The supervisor restarts it: frames again, and the agent says so.
        await next_json(obs, EVENTS, lambda e: e["event"] == "camera.recovered", timeout=30)
        assert agent.camera.restarts >= 1 and agent.camera.source is not source
