"""Home Assistant discovery payloads against the keys Home Assistant documents per platform.

Expectations are written from the MQTT platform pages (each cited), not from our code:
every required key present, every key one the platform (or the common entity/availability
schema) accepts, and exclusive pairs never both set.
"""

from __future__ import annotations

import json

from agent.config.schema import HomeAssistantConfig
from agent.runtime.homeassistant import discovery_messages
from agent.signaling.topics import Topics

# https://www.home-assistant.io/integrations/mqtt/ (discovery; entity and availability keys)
COMMON = {
    "availability", "availability_mode", "availability_template", "availability_topic",
    "payload_available", "payload_not_available", "device", "name", "unique_id", "icon",
    "entity_category", "enabled_by_default", "json_attributes_topic", "object_id", "qos",
    "default_entity_id",
}  # fmt: skip
# fmt: off
PLATFORMS: dict[str, dict[str, set[str]]] = {
    # https://www.home-assistant.io/integrations/image.mqtt/
    "image": {
        "required_one_of": {"image_topic", "url_topic"},
        "optional": {"content_type", "image_encoding", "url_template"},
    },
    # https://www.home-assistant.io/integrations/sensor.mqtt/
    "sensor": {
        "required": {"state_topic"},
        "optional": {
            "value_template",
            "unit_of_measurement",
            "device_class",
            "state_class",
            "expire_after",
            "force_update",
            "suggested_display_precision",
        },
    },
    # https://www.home-assistant.io/integrations/button.mqtt/
    "button": {
        "required": {"command_topic"},
        "optional": {"payload_press", "command_template", "device_class", "retain"},
    },
    # https://www.home-assistant.io/integrations/number.mqtt/
    "number": {
        "required": {"command_topic"},
        "optional": {
            "command_template",
            "state_topic",
            "value_template",
            "min",
            "max",
            "step",
            "mode",
            "unit_of_measurement",
            "device_class",
            "retain",
            "optimistic",
            "payload_reset",
        },
    },
}
# https://www.home-assistant.io/integrations/mqtt/#availability: each entry has `topic`.
AVAILABILITY_ENTRY = {"topic", "value_template", "payload_available", "payload_not_available"}
DEVICE_KEYS = {"identifiers", "connections", "name", "manufacturer", "model", "sw_version",
               "hw_version", "configuration_url", "suggested_area", "via_device"}  # fmt: skip

TOPICS = Topics("edgecam", "cam-01")
MESSAGES = discovery_messages(HomeAssistantConfig(enabled=True), TOPICS, "0.1.0")


def test_every_platform_the_issue_asks_for_is_there() -> None:
    components = sorted({topic.split("/")[1] for topic, _ in MESSAGES})
    assert components == ["button", "image", "number", "sensor"]
    objects = {topic.split("/")[3] for topic, _ in MESSAGES}
    assert {"snapshot", "viewers", "bitrate_out", "keyframe", "bitrate"} <= objects


def test_payloads_follow_each_platforms_documented_keys() -> None:
    for topic, payload in MESSAGES:
        prefix, component, node, _object, config = topic.split("/")
        assert (prefix, node, config) == ("homeassistant", "cam-01", "config")
        schema = PLATFORMS[component]
        keys = set(payload)
        assert schema.get("required", set()) <= keys, topic
        one_of = schema.get("required_one_of")
        if one_of:
            assert len(one_of & keys) == 1, topic  # exclusive: exactly one
        allowed = COMMON | schema.get("required", set()) | (one_of or set()) | schema["optional"]
        assert keys <= allowed, (topic, keys - allowed)
        assert not ({"availability", "availability_topic"} <= keys)  # exclusive
        for entry in payload["availability"]:
            assert "topic" in entry and set(entry) <= AVAILABILITY_ENTRY
        assert payload["device"]["identifiers"] and set(payload["device"]) <= DEVICE_KEYS
        json.dumps(payload)  # a JSON object, as discovery needs


def test_availability_and_states_come_from_the_contracts_topics() -> None:
    by_object = {topic.split("/")[3]: payload for topic, payload in MESSAGES}
    for payload in by_object.values():
        assert payload["availability"][0]["topic"] == "edgecam/cam-01/status"
    assert by_object["viewers"]["state_topic"] == "edgecam/cam-01/status"
    assert by_object["bitrate_out"]["state_topic"] == "edgecam/cam-01/telemetry"
    assert by_object["bitrate"]["command_topic"] == "edgecam/cam-01/rpc/homeassistant"
    assert by_object["snapshot"]["image_topic"] == "edgecam/cam-01/homeassistant/snapshot"
    assert len({p["unique_id"] for p in by_object.values()}) == len(by_object)


def test_commands_are_json_rpc_notifications() -> None:
    by_object = {topic.split("/")[3]: payload for topic, payload in MESSAGES}
    press = json.loads(by_object["keyframe"]["payload_press"])
    assert press == {"jsonrpc": "2.0", "method": "stream.keyframe", "params": {}}
    # Home Assistant renders `value` into the template (Jinja); `{{ value | int }}` -> digits.
    template = by_object["bitrate"]["command_template"]
    rendered = json.loads(template.replace("{{ value | int }}", "1500000"))
    assert rendered == {"jsonrpc": "2.0", "method": "stream.set", "params": {"bitrate": 1500000}}
