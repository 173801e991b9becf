"""Home Assistant discovery from a running agent on mosquitto: retained configs, a picture on
request, and the button's and number's payloads doing what they say through the device's
roles (Home Assistant's client id has the operator role)."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import av

from agent.config import load_config
from agent.runtime.app import Agent
from tests.client.fleet_rig import WAIT, fleet_broker, wait_for_keyframe, write_device_config
from tests.e2e.mqtt_rig import next_json
from tests.infra.mosquitto import MosquittoBroker

__all__ = ["fleet_broker"]


async def test_discovery_snapshot_button_and_number(
    fleet_broker: MosquittoBroker, tmp_path: Path
) -> None:
    broker = fleet_broker
    # The device may publish its own discovery configs (as the README tells deployments).
    # The device publishes its discovery configs and pictures; Home Assistant reads them and
    # asks for pictures (the lines the README gives deployments).
    lines = [
        "pattern write homeassistant/+/%u/#",
        "pattern read homeassistant/#",
        "pattern read edgecam/+/homeassistant/snapshot",
        "pattern write edgecam/+/homeassistant/snapshot/request",
    ]
    with broker.acl_path.open("a") as acl:
        acl.write("\n".join(lines) + "\n")
    broker.restart()
    path = write_device_config(broker, tmp_path / "cam-ha", "cam-ha")
    text = path.read_text().replace('operator = ["ops-*"]', 'operator = ["ops-*", "homeassistant"]')
    path.write_text(text + "\n[homeassistant]\nenabled = true\n")
    import aiomqtt

    async with aiomqtt.Client(
        "127.0.0.1",
        broker.tls_port,
        identifier="homeassistant",
        tls_context=broker.client_tls_context("homeassistant"),
    ) as ha:
        await ha.subscribe("homeassistant/#", qos=1)
        await ha.subscribe("edgecam/cam-ha/homeassistant/snapshot", qos=0)
        await ha.subscribe("edgecam/cam-ha/status", qos=1)
        agent = Agent(load_config(path))
        await agent.start()
        try:
            await agent.mqtt.wait_connected(WAIT)
            await wait_for_keyframe(agent)
            configs: dict[str, dict[str, object]] = {}
            async with asyncio.timeout(WAIT):
                async for message in ha.messages:
                    if message.topic.matches("homeassistant/+/cam-ha/+/config"):
                        assert isinstance(message.payload, bytes)
                        configs[message.topic.value.split("/")[3]] = json.loads(message.payload)
                    if len(configs) == 6:
                        break
            request = configs["snapshot_request"]
            await ha.publish(str(request["command_topic"]), str(request["payload_press"]))
            async with asyncio.timeout(WAIT):
                async for message in ha.messages:
                    if message.topic.value == "edgecam/cam-ha/homeassistant/snapshot":
                        jpeg = message.payload
                        break
            assert isinstance(jpeg, bytes) and jpeg[:2] == b"\xff\xd8"
            with av.open(io.BytesIO(jpeg), format="image2pipe") as container:
                frame = next(container.decode(video=0))
            assert (frame.width, frame.height) == (160, 120)

            number = configs["bitrate"]
            template = str(number["command_template"]).replace("{{ value | int }}", "700000")
            await ha.publish(str(number["command_topic"]), template, qos=1)
            status = await next_json(
                ha, "edgecam/cam-ha/status", lambda s: s["stream"]["bitrate"] == 700000
            )
            assert status["state"] == "online"
            assert agent.stream_info()["bitrate"] == 700000
        finally:
            await agent.stop()
