"""agent/signaling/mqtt.py's per-owner share: one client's replies in flight to the broker are
capped at OWNER_SHARE, so its backlog never takes another client's place. Against a real
mosquitto (TLS, client certificates), observed by an independent aiomqtt client.

Run inside the loopback-only namespace: `bash tests/tools/isolated.sh
/work/main/.venv/bin/python -m pytest tests/signaling/test_mqtt_owner_share.py`
"""
# Fixtures are imported by name and then requested as parameters, which F811 misreads.
# ruff: noqa: F811

from __future__ import annotations

import asyncio

import aiomqtt

from agent.signaling.mqtt import MqttClient, MqttSettings
from agent.signaling.mqtt_outbox import OWNER_SHARE
from tests.infra.mosquitto import MosquittoBroker, mosquitto_broker  # noqa: F401
from tests.infra.pki import pki  # noqa: F401

WAIT = 5.0
DEVICE = "cam-01"
FLOODER = "ops-1"  # observed: the ACL lets it read only its own reply topic
OTHER = "ops-2"


def reply_topic(client: str) -> str:
    return f"edgecam/{DEVICE}/rpc/{client}/reply"


async def acknowledged(client: MqttClient) -> None:
    """Wait until the broker has acknowledged every owned message (PUBACK)."""
    async with asyncio.timeout(WAIT):
        while client._outbox.in_flight:
            client._published_event.clear()
            await client._published_event.wait()


async def test_one_owners_replies_in_flight_are_capped_and_others_are_not(
    mosquitto_broker: MosquittoBroker,
) -> None:
    broker = mosquitto_broker
    cert, key = broker.issue_client(DEVICE)
    settings = MqttSettings(
        url=f"mqtts://127.0.0.1:{broker.tls_port}", client_id=DEVICE,
        ca=str(broker.ca_path), cert=str(cert), key=str(key),
    )
    device = MqttClient(settings, on_message=lambda topic, payload: None)
    async with aiomqtt.Client(
        "127.0.0.1", broker.tls_port, identifier=FLOODER,
        protocol=aiomqtt.ProtocolVersion.V5, tls_context=broker.client_tls_context(FLOODER),
    ) as observer:
        await observer.subscribe(reply_topic(FLOODER), qos=1)
        await device.start()
        try:
            await device.wait_connected(WAIT)
            # A burst with no turn of the loop in between: nothing can be acknowledged yet.
            accepted = [
                device.publish(reply_topic(FLOODER), b"%d" % i, qos=1, owner=FLOODER)
                for i in range(OWNER_SHARE + 5)
            ]
            assert accepted == [True] * OWNER_SHARE + [False] * 5
            assert device.dropped_over_share == 5
            # Another client's reply still goes out, and so does an unowned message.
            assert device.publish(reply_topic(OTHER), b"other", qos=1, owner=OTHER)
            assert device.publish(f"edgecam/{DEVICE}/events", b"{}", qos=1)

            received = []
            async with asyncio.timeout(WAIT):
                async for message in observer.messages:
                    received.append(message.payload)
                    if len(received) == OWNER_SHARE:
                        break
            assert received == [b"%d" % i for i in range(OWNER_SHARE)]

            # Once acknowledged, the share is free again.
            await acknowledged(device)
            assert device.publish(reply_topic(FLOODER), b"again", qos=1, owner=FLOODER)
            async with asyncio.timeout(WAIT):
                message = await anext(observer.messages)
            assert message.payload == b"again"
            assert device.dropped_over_share == 5
        finally:
            await device.stop()
