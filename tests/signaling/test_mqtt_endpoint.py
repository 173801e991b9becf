"""Tests of agent/signaling/mqtt_endpoint.py: `mqtt.url` parsing and the broker TLS context.

The refusals are checked through `MqttClient`, which must fail when it is built, naming the
config key at fault. No broker is needed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.signaling.mqtt import MqttClient, MqttSettings
from agent.signaling.mqtt_endpoint import MqttEndpoint

DEVICE = "cam-01"


@pytest.mark.parametrize(
    ("url", "allow_insecure"),
    [
        ("mqtt://127.0.0.1:1883", False),
        ("ws://127.0.0.1:8080/mqtt", False),
        ("http://127.0.0.1", True),
        ("mqtts://", False),
        ("mqtts://device:secret@broker.example", False),
        ("mqtts://broker.example:notaport", False),
        ("mqtts://broker.example/some/path", False),
    ],
)
def test_bad_urls_are_refused_naming_the_key(url: str, allow_insecure: bool) -> None:
    settings = MqttSettings(url=url, client_id=DEVICE, ca=None, cert=None, key=None,
                            allow_insecure=allow_insecure)
    with pytest.raises(ValueError, match=r"^mqtt\.url") as info:
        MqttClient(settings, on_message=lambda _t, _p: None)
    assert "secret" not in str(info.value)


def test_url_forms() -> None:
    assert MqttEndpoint.from_url("mqtts://broker.example", allow_insecure=False) == MqttEndpoint(
        "mqtts", "broker.example", 8883, True, "tcp", "/mqtt")
    assert MqttEndpoint.from_url("mqtt://h", allow_insecure=True).port == 1883
    wss = MqttEndpoint.from_url("wss://h:9001/ws", allow_insecure=False)
    assert (wss.port, wss.tls, wss.transport, wss.path) == (9001, True, "websockets", "/ws")
    assert str(wss) == "wss://h:9001/ws"


def test_unreadable_ca_names_the_key(tmp_path: Path) -> None:
    settings = MqttSettings(url="mqtts://h", client_id=DEVICE, ca=str(tmp_path / "missing.pem"),
                            cert=None, key=None)
    with pytest.raises(ValueError, match=r"^mqtt\.ca"):
        MqttClient(settings, on_message=lambda _t, _p: None)
