"""camera.controls / camera.get / camera.set over MQTT, on the test pattern's controls:
listed with ranges, applied live, refused by role and by value, saved, and announced."""

from __future__ import annotations

import tomllib
from pathlib import Path

from agent.runtime.app import Agent
from tests.e2e.mqtt_rig import DEVICE, PREFIX, RpcClient, next_json, observer
from tests.infra.mosquitto import MosquittoBroker

EVENTS = f"{PREFIX}/{DEVICE}/events"


async def test_camera_controls_are_listed_set_saved_and_announced(
    broker: MosquittoBroker, agent: Agent
) -> None:
    override = Path(agent.config.device.state_dir) / "config.override.toml"
    async with (
        RpcClient(broker, "viewer-1") as viewer,
        RpcClient(broker, "ops-1") as ops,
        observer(broker, EVENTS) as obs,
    ):
        controls = await viewer.call("camera.controls")
        assert {"brightness", "contrast", "hflip"} <= set(controls)
        brightness = controls["brightness"]
        assert brightness["type"] == "float" and brightness["min"] < brightness["max"]
        denied = await viewer.request("camera.set", {"brightness": 0.2})
        assert denied["error"]["code"] == -32001
        bad = await ops.request("camera.set", {"brightness": brightness["max"] + 1})
        assert bad["error"]["code"] == -32602 and "brightness" in bad["error"]["message"]
        unknown = await ops.request("camera.set", {"sparkle": 1})
        assert unknown["error"]["code"] == -32602 and "sparkle" in unknown["error"]["message"]

        applied = await ops.call("camera.set", {"brightness": 0.2, "hflip": True})
        assert applied == {"brightness": 0.2, "hflip": True}
        assert (await viewer.call("camera.get"))["brightness"] == 0.2
        event = await next_json(obs, EVENTS, lambda e: e["event"] == "camera.controls")
        assert event["values"] == {"brightness": 0.2, "hflip": True}
        saved = tomllib.loads(override.read_text())
        assert saved["camera"]["controls"] == {"brightness": 0.2, "hflip": True}
