"""Home Assistant MQTT discovery for this device (config `[homeassistant]`).

Everything rides on the public contract, so Home Assistant needs no edgecam integration:
- `sensor`s read the retained status (viewers) and telemetry (`bitrate_out`);
- the `number` (bitrate) and the keyframe `button` publish JSON-RPC notifications on
  `P/D/rpc/<client_id>`, so the device's `[access]` roles and rate limits apply to them;
- the `image` entity shows JPEGs this module publishes, raw, on `P/D/homeassistant/snapshot`
  (retained), every `snapshot_interval` seconds and when the Snapshot button publishes on
  `P/D/homeassistant/snapshot/request`;
- availability of every entity is the status topic's `state` (the will sets it offline).
Discovery configs are retained on `<discovery_prefix>/<component>/<device>/<object>/config`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

from agent.config.schema import HomeAssistantConfig
from agent.signaling.mqtt import MqttClient
from agent.signaling.topics import Topics

logger = logging.getLogger(__name__)

MIN_REQUEST_GAP: Final = 1.0  # seconds between pictures asked for by the button
Snapshot = Callable[[int], Awaitable[tuple[bytes, int, int]]]


def snapshot_topic(topics: Topics) -> str:
    return f"{topics.base}/homeassistant/snapshot"


def request_topic(topics: Topics) -> str:
    return f"{snapshot_topic(topics)}/request"


def _rpc(method: str, params: str) -> str:
    """A JSON-RPC notification as a Home Assistant command template (Jinja)."""
    return '{"jsonrpc":"2.0","method":"' + method + '","params":' + params + "}"


def discovery_messages(
    ha: HomeAssistantConfig, topics: Topics, version: str, bitrate_max: int = 20_000_000
) -> list[tuple[str, dict[str, Any]]]:
    """(config topic, discovery payload) for each entity of the device."""
    device = topics.device
    command = f"{topics.base}/rpc/{ha.client_id}"
    common: dict[str, Any] = {
        "availability": [
            {
                "topic": topics.status,
                "value_template": "{{ value_json.state }}",
                "payload_available": "online",
                "payload_not_available": "offline",
            }
        ],
        "device": {
            "identifiers": [f"edgecam_{device}"],
            "name": device,
            "manufacturer": "edgecam",
            "model": "edgecam agent",
            "sw_version": version,
        },
    }
    entities: list[tuple[str, str, dict[str, Any]]] = [
        ("image", "snapshot", {"name": "Snapshot", "image_topic": snapshot_topic(topics),
                               "content_type": "image/jpeg"}),
        ("sensor", "viewers", {"name": "Viewers", "state_topic": topics.status,
                               "value_template": "{{ value_json.viewers }}",
                               "state_class": "measurement"}),
        ("sensor", "bitrate_out", {"name": "Bitrate out", "state_topic": topics.telemetry,
                                   "value_template": "{{ value_json.bitrate_out }}",
                                   "unit_of_measurement": "bit/s", "device_class": "data_rate",
                                   "state_class": "measurement"}),
        ("button", "keyframe", {"name": "Keyframe", "command_topic": command,
                                "payload_press": _rpc("stream.keyframe", "{}")}),
        ("button", "snapshot_request", {"name": "Take snapshot",
                                        "command_topic": request_topic(topics),
                                        "payload_press": "snapshot"}),
        ("number", "bitrate", {"name": "Bitrate", "command_topic": command,
                               "command_template": _rpc("stream.set",
                                                        '{"bitrate":{{ value | int }}}'),
                               "state_topic": topics.status,
                               "value_template": "{{ value_json.stream.bitrate }}",
                               "min": 100_000, "max": bitrate_max, "step": 100_000,
                               "mode": "box", "unit_of_measurement": "bit/s",
                               "device_class": "data_rate"}),
    ]  # fmt: skip
    return [
        (
            f"{ha.discovery_prefix}/{component}/{device}/{object_id}/config",
            {**fields, **common, "unique_id": f"edgecam_{device}_{object_id}"},
        )
        for component, object_id, fields in entities
    ]


class HomeAssistantPublisher:
    """Publishes discovery on every connect, and pictures for the image entity."""

    def __init__(
        self,
        config: HomeAssistantConfig,
        topics: Topics,
        mqtt: MqttClient,
        snapshot: Snapshot,
        version: str,
        clock: Callable[[], float],
    ) -> None:
        self._config = config
        self._topics = topics
        self._mqtt = mqtt
        self._snapshot = snapshot
        self._version = version
        self._clock = clock
        self._last_request = -MIN_REQUEST_GAP
        self._tasks: set[asyncio.Task[Any]] = set()

    def subscribe(self) -> None:
        self._mqtt.subscribe(request_topic(self._topics), qos=0)

    def handles(self, topic: str) -> bool:
        return topic == request_topic(self._topics)

    def publish_discovery(self) -> None:
        for topic, payload in discovery_messages(self._config, self._topics, self._version):
            self._mqtt.publish(topic, json.dumps(payload).encode(), qos=1, retain=True)

    def on_request(self) -> None:
        """The Snapshot button: one picture, at most one per MIN_REQUEST_GAP seconds."""
        now = self._clock()
        if now - self._last_request < MIN_REQUEST_GAP:
            return
        self._last_request = now
        task = asyncio.get_running_loop().create_task(self.publish_snapshot())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def publish_snapshot(self) -> bool:
        """One JPEG on the image topic (retained); False (logged) when there is none yet."""
        try:
            jpeg, _width, _height = await self._snapshot(self._config.snapshot_quality)
        except Exception as exc:  # no keyframe yet, camera restarting: try at the next turn
            logger.info("homeassistant: no snapshot: %s", exc)
            return False
        self._mqtt.publish(snapshot_topic(self._topics), jpeg, qos=0, retain=True)
        return True

    async def run(self) -> None:
        """Every `snapshot_interval` seconds a picture (never, when it is 0)."""
        if self._config.snapshot_interval <= 0:
            return
        while True:
            if self._mqtt.connected:
                await self.publish_snapshot()
            await asyncio.sleep(self._config.snapshot_interval)
