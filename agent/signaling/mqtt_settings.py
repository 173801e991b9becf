"""What the MQTT client is told (``MqttSettings``), its states, and the paho client made
from the settings: protocol version, TLS, WebSocket path, credentials, the will, and paho's
one blocking call, run in the executor so that the loop never waits for the broker.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Final

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.signaling.mqtt_endpoint import MqttEndpoint
from agent.signaling.mqtt_outbox import QUEUE_LIMIT
from agent.signaling.paho_socket import describe

CONNECT_TIMEOUT: Final = 10.0  # paho's socket timeout for TCP connect and TLS/WS handshakes
# Largest packet the broker may send us (MQTT 5 CONNECT property): requests are at most
# 64 KiB, so this leaves room for topics and properties and nothing for a memory attack.
MAX_INCOMING_PACKET: Final = 1024 * 1024


@dataclass(frozen=True)
class MqttSettings:
    """What the client needs from config section `[mqtt]` plus the device's will (LWT)."""

    url: str
    client_id: str
    ca: str | None
    cert: str | None
    key: str | None
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # settings end up in tracebacks
    allow_insecure: bool = False
    keepalive: int = 30
    will_topic: str | None = None
    will_payload: bytes = b""
    will_qos: int = 1
    will_retain: bool = True


class MqttState(Enum):
    """Lifecycle of `MqttClient`."""

    IDLE = "idle"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    BACKOFF = "backoff"
    STOPPING = "stopping"
    STOPPED = "stopped"


def new_paho(
    s: MqttSettings,
    endpoint: MqttEndpoint,
    tls: ssl.SSLContext | None,
    protocol: MQTTProtocolVersion,
) -> paho.Client:
    """A paho client for ``s``, with no callbacks yet and no network thread."""
    v5 = protocol == MQTTProtocolVersion.MQTTv5
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=s.client_id,
        clean_session=None if v5 else True,
        protocol=protocol,
        transport=endpoint.transport,
        reconnect_on_failure=False,  # else paho reconnects by itself, blocking, on the loop
    )
    client.connect_timeout = CONNECT_TIMEOUT
    client.max_queued_messages_set(QUEUE_LIMIT)
    if tls is not None:
        client.tls_set_context(tls)
    if endpoint.transport == "websockets":
        client.ws_set_options(path=endpoint.path)
    if s.username is not None:
        client.username_pw_set(s.username, s.password)
    if s.will_topic is not None:
        client.will_set(s.will_topic, s.will_payload, s.will_qos, s.will_retain)
    return client


def connect(
    client: paho.Client, endpoint: MqttEndpoint, protocol: MQTTProtocolVersion, keepalive: int
) -> None:
    """Runs in the executor: the only place paho blocks (DNS, TCP, TLS, WebSocket)."""
    kwargs: dict[str, Any] = {}
    if protocol == MQTTProtocolVersion.MQTTv5:
        kwargs["clean_start"] = True
        # The broker must not send us anything larger: paho would read and copy it whole.
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.MaximumPacketSize = MAX_INCOMING_PACKET
        kwargs["properties"] = properties
    rc = client.connect(endpoint.host, endpoint.port, keepalive=keepalive, **kwargs)
    if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
        raise ConnectionError(paho.error_string(rc))


def _abandon(client: paho.Client, done: asyncio.Future[None]) -> None:
    """Close what a connect() that finished after we stopped waiting has opened."""
    if done.cancelled() or done.exception() is not None:
        return
    sock = client.socket()
    if sock is not None:
        sock.close()


async def connect_in_executor(
    client: paho.Client, blocking_connect: Callable[[paho.Client], None], stop: asyncio.Event
) -> str | None:
    """``blocking_connect(client)`` (DNS, TCP, TLS, WebSocket) in the executor; None once
    its socket is there, else why not ("stopped" when ``stop`` is set meanwhile)."""
    loop = asyncio.get_running_loop()
    connecting = loop.run_in_executor(None, blocking_connect, client)
    stopping = loop.create_task(stop.wait())
    waiters: set[asyncio.Future[Any]] = {connecting, stopping}
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if not connecting.done():
        # The thread cannot be interrupted; close what it opens once it is done.
        connecting.add_done_callback(lambda f: _abandon(client, f))
        return "stopped"
    try:
        connecting.result()
    except Exception as exc:
        return describe(exc)
    if stop.is_set():
        _abandon(client, connecting)
        return "stopped"
    if client.socket() is None:
        return "paho has no socket after connect()"
    return None
