"""Hostile input over MQTT (issue 12): floods, log floods, bad JSON, config that would brick
the device, a camera path that blocks. Each with a healthy aiortc viewer watching."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path

import pytest

from agent.runtime.app import Agent
from tests.e2e.mqtt_rig import DEVICE, PREFIX, RpcClient, next_json, observer, watch
from tests.infra.mosquitto import MosquittoBroker

TELEMETRY = f"{PREFIX}/{DEVICE}/telemetry"
# What a healthy viewer and an innocent client must see whatever the attack (issue 12).
MAX_FRAME_GAP = 1.0
MAX_ANSWER_TIME = 1.0


async def _timed_call(client: RpcClient, method: str) -> float:
    loop = asyncio.get_running_loop()
    start = loop.time()
    await client.call(method)
    return loop.time() - start


async def test_a_request_flood_costs_only_the_flooder(
    broker: MosquittoBroker, agent: Agent
) -> None:
    async with (
        RpcClient(broker, "viewer-1") as watcher,
        RpcClient(broker, "viewer-flood") as flooder,
        RpcClient(broker, "ops-1") as innocent,
        observer(broker, TELEMETRY) as obs,
    ):
        viewer = await watch(watcher, "healthy")
        try:
            await viewer.wait_frames(10)
            viewer.reset_gap()
            request = b'{"jsonrpc":"2.0","id":%d,"method":"device.status","params":{}}'
            assert flooder.client is not None

            async def flood() -> None:
                for i in range(3000):
                    await flooder.client.publish(flooder.request_topic, request % i, qos=0)

            flooding = asyncio.create_task(flood())
            times = []
            while not flooding.done():
                times.append(await _timed_call(innocent, "stream.get"))
            await flooding
            times.append(await _timed_call(innocent, "device.status"))
            assert max(times) < MAX_ANSWER_TIME, times
            assert viewer.gap_now() < MAX_FRAME_GAP
            # The flooder was told to slow down, and the device counted what it refused.
            assert any(r.get("error", {}).get("code") == -32005 for r in flooder.responses)
            body = await next_json(obs, TELEMETRY, lambda t: t["dropped"].get("rate", 0) > 0)
            assert body["dropped"]["rate"] > 0
        finally:
            await viewer.close()


async def test_a_client_with_no_role_cannot_flood_the_log(
    broker: MosquittoBroker, agent: Agent, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with RpcClient(broker, "stranger-1") as stranger, RpcClient(broker, "ops-1") as ops:
        assert stranger.client is not None
        for i in range(300):
            body = {"jsonrpc": "2.0", "id": i, "method": "device.status", "params": {}}
            await stranger.client.publish(stranger.request_topic, json.dumps(body).encode(), qos=1)
        # The device reads one connection in order: once this is answered, the flood is in.
        await ops.call("device.status")
    lines = [r for r in caplog.records if "stranger-1" in r.getMessage()]
    assert stranger.responses, "the stranger is still answered (-32001 or -32005)"
    assert 1 <= len(lines) <= 20, "\n".join(r.getMessage() for r in lines)


async def test_unparsable_json_is_answered_with_id_null(
    broker: MosquittoBroker, agent: Agent
) -> None:
    async with RpcClient(broker, "viewer-1") as client:
        answer = await client.raw_request(b'{"jsonrpc": "2.0", "method": "device.sta', None)
        assert answer == {
            "jsonrpc": "2.0",
            "id": None,
            "error": {"code": -32700, "message": answer["error"]["message"]},
        }
        assert answer["error"]["message"].startswith("parse error")


async def test_config_set_refuses_what_would_brick_the_device(
    broker: MosquittoBroker, agent: Agent
) -> None:
    override = Path(agent.config.device.state_dir) / "config.override.toml"
    async with RpcClient(broker, "admin-1") as admin:
        missing_ca = await admin.request("config.set", {"mqtt": {"ca": "/nonexistent/ca.pem"}})
        assert missing_ca["error"]["code"] == -32602
        assert "mqtt.ca" in missing_ca["error"]["message"]
        foreign = await admin.request("config.set", {"webrtc": {"ice_addresses": ["192.0.2.1"]}})
        assert foreign["error"]["code"] == -32602
        assert "192.0.2.1" in foreign["error"]["message"]
        assert not override.exists()  # nothing was saved
        assert (await admin.call("config.get"))["mqtt"].get("ca") == agent.config.mqtt.ca


async def test_config_set_camera_path_to_a_fifo_is_refused_while_video_plays(
    broker: MosquittoBroker, agent: Agent, tmp_path: Path
) -> None:
    fifo = tmp_path / "camera.fifo"
    os.mkfifo(fifo)
    async with RpcClient(broker, "viewer-1") as watcher, RpcClient(broker, "admin-1") as admin:
        viewer = await watch(watcher, "healthy")
        try:
            await viewer.wait_frames(10)
            viewer.reset_gap()
            change = {"camera": {"source": "file", "path": str(fifo)}}
            refused = await admin.request("config.set", change)
            assert refused["error"]["code"] in (-32006, -32602)
            assert str(fifo) in refused["error"]["message"]
            assert await _timed_call(admin, "stream.get") < MAX_ANSWER_TIME
            await viewer.wait_frames(viewer.frames + 10)
            assert viewer.gap_now() < MAX_FRAME_GAP
            assert agent.config.camera.source == "testsrc"
        finally:
            await viewer.close()
