"""Tests of agent/signaling/mqtt.py against real brokers: mosquitto (TLS with client
certificates, ACLs, WebSockets) and amqtt (MQTT 3.1.1 only). Observers are aiomqtt clients.

Run inside the loopback-only namespace:
`tests/tools/isolated.sh .venv/bin/python -m pytest tests/signaling/test_mqtt.py -q`
"""
# Fixtures are imported by name and then requested as parameters, which F811 misreads.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import aiomqtt
import pytest
from amqtt.broker import Broker

from agent.signaling.mqtt import MqttClient, MqttSettings, MqttState
from agent.signaling.mqtt_outbox import QUEUE_LIMIT
from tests.infra.mosquitto import MosquittoBroker, mosquitto_broker  # noqa: F401
from tests.infra.pki import Pki, pki  # noqa: F401
from tests.infra.tools import free_port

WAIT = 5.0
DEVICE = "cam-01"
OBSERVER = "ops-1"
STATUS = f"edgecam/{DEVICE}/status"
EVENTS = f"edgecam/{DEVICE}/events"
TELEMETRY = f"edgecam/{DEVICE}/telemetry"
RPC_SUB = f"edgecam/{DEVICE}/rpc/+"
RPC = f"edgecam/{DEVICE}/rpc/{OBSERVER}"
REPLY = f"{RPC}/reply"
ONLINE = b'{"state":"online","device":"cam-01"}'
OFFLINE = b'{"state":"offline","device":"cam-01"}'
LOGGER = "agent.signaling.mqtt"

T = TypeVar("T")


async def get(queue: asyncio.Queue[T], timeout: float = WAIT) -> T:
    async with asyncio.timeout(timeout):
        return await queue.get()


class Device:
    """An MqttClient whose callbacks feed queues; its async on_connect publishes `status`."""

    def __init__(self, settings: MqttSettings, status: bytes | None) -> None:
        self.status = status
        self.messages: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self.connects: asyncio.Queue[int] = asyncio.Queue()
        self.disconnects: asyncio.Queue[str] = asyncio.Queue()
        self.connect_count = 0
        self.client = MqttClient(
            settings,
            on_message=lambda topic, payload: self.messages.put_nowait((topic, payload)),
            on_connect=self._on_connect,
            on_disconnect=self.disconnects.put_nowait,
        )

    async def _on_connect(self) -> None:
        self.connect_count += 1
        if self.status is not None:
            assert self.client.publish(STATUS, self.status, qos=1, retain=True)
        self.connects.put_nowait(self.connect_count)


@pytest.fixture
async def make_device() -> AsyncIterator[Callable[..., Device]]:
    made: list[Device] = []

    def make(settings: MqttSettings, *, status: bytes | None = None) -> Device:
        device = Device(settings, status)
        made.append(device)
        return device

    yield make
    for device in made:
        await device.client.stop()


class LogWatch(logging.Handler):
    """Records of the module's logger, with a way to wait for one (they come from the loop)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self._changed.set()

    def matching(self, text: str) -> list[logging.LogRecord]:
        return [r for r in self.records if text in r.getMessage()]

    async def wait_for(self, text: str, count: int = 1, timeout: float = WAIT) -> None:
        async with asyncio.timeout(timeout):
            while len(self.matching(text)) < count:
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
def log_watch() -> Iterator[LogWatch]:
    watch = LogWatch()
    log = logging.getLogger(LOGGER)
    level = log.level
    log.setLevel(logging.DEBUG)
    log.addHandler(watch)
    yield watch
    log.removeHandler(watch)
    log.setLevel(level)


def device_settings(broker: MosquittoBroker, **changes: Any) -> MqttSettings:
    cert, key = broker.issue_client(DEVICE)
    settings = MqttSettings(
        url=f"mqtts://127.0.0.1:{broker.tls_port}", client_id=DEVICE,
        ca=str(broker.ca_path), cert=str(cert), key=str(key),
        will_topic=STATUS, will_payload=OFFLINE,
    )
    return replace(settings, **changes)


@contextlib.asynccontextmanager
async def observer(broker: MosquittoBroker, *topics: str) -> AsyncIterator[aiomqtt.Client]:
    """An independent client (aiomqtt) with its own certificate, subscribed to `topics`."""
    async with aiomqtt.Client(
        "127.0.0.1", broker.tls_port, identifier=OBSERVER,
        protocol=aiomqtt.ProtocolVersion.V5, tls_context=broker.client_tls_context(OBSERVER),
    ) as client:
        for topic in topics:
            await client.subscribe(topic, qos=1)
        yield client


async def next_message(client: aiomqtt.Client) -> tuple[str, bytes]:
    async with asyncio.timeout(WAIT):
        message = await anext(client.messages)
    assert isinstance(message.payload, bytes)
    return message.topic.value, message.payload


def cut_connection(client: MqttClient) -> None:
    """Kill the TCP connection under the client without a DISCONNECT, as a network fault would."""
    sock = client._paho.socket()
    assert sock is not None
    dup = socket.socket(fileno=os.dup(sock.fileno()))
    dup.shutdown(socket.SHUT_RDWR)
    dup.close()


class Ticker:
    """Measures the longest gap between wake-ups of a task that sleeps 10 ms at a time."""

    def __init__(self) -> None:
        self.max_gap = 0.0
        self.count = 0
        self._ticked = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(0.01)
            now = loop.time()
            self.max_gap = max(self.max_gap, now - last)
            last = now
            self.count += 1
            self._ticked.set()

    async def ticks(self, n: int) -> None:
        """Wait for `n` more ticks: a measurement window counted in ticks."""
        target = self.count + n
        async with asyncio.timeout(WAIT):
            while self.count < target:
                self._ticked.clear()
                await self._ticked.wait()

    async def stop(self) -> float:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        return self.max_gap


async def test_tls_client_certificate_round_trip(
    mosquitto_broker: MosquittoBroker, make_device: Callable[..., Device]
) -> None:
    device = make_device(device_settings(mosquitto_broker))
    device.client.subscribe(RPC_SUB)
    await device.client.start()
    assert await get(device.connects) == 1
    assert device.client.connected
    assert device.client.protocol == "5"

    async with observer(mosquitto_broker, REPLY) as obs:
        await obs.publish(RPC, b"request", qos=1)
        assert await get(device.messages) == (RPC, b"request")
        assert device.client.publish(REPLY, b"response", qos=1)
        assert await next_message(obs) == (REPLY, b"response")


async def test_abrupt_loss_delivers_will_then_reconnects(
    mosquitto_broker: MosquittoBroker, make_device: Callable[..., Device]
) -> None:
    device = make_device(device_settings(mosquitto_broker), status=ONLINE)
    async with observer(mosquitto_broker, STATUS) as obs:
        await device.client.start()
        assert await get(device.connects) == 1
        assert await next_message(obs) == (STATUS, ONLINE)

        cut_connection(device.client)
        assert (await get(device.disconnects)).startswith("connection lost")
        assert await next_message(obs) == (STATUS, OFFLINE)  # the will

        # on_connect runs again and republishes the retained status.
        assert await get(device.connects, timeout=10) == 2
        assert await next_message(obs) == (STATUS, ONLINE)


async def test_clean_stop_publishes_final_and_suppresses_will(
    mosquitto_broker: MosquittoBroker, make_device: Callable[..., Device], log_watch: LogWatch
) -> None:
    will = b'{"state":"offline","device":"cam-01","by":"will"}'
    device = make_device(device_settings(mosquitto_broker, will_payload=will), status=ONLINE)
    async with observer(mosquitto_broker, STATUS, EVENTS) as obs:
        await device.client.start()
        assert await next_message(obs) == (STATUS, ONLINE)

        await device.client.stop(final=[(STATUS, OFFLINE, 1, True)])
        assert device.client.state is MqttState.STOPPED
        assert await get(device.disconnects) == "stopped"
        assert not log_watch.matching("not acknowledged")
        assert await next_message(obs) == (STATUS, OFFLINE)

        # A marker published after the stop, by a new connection with the same identity: had the
        # broker sent the will, the observer would see it before the marker.
        marker = make_device(device_settings(mosquitto_broker, will_topic=None))
        await marker.client.start()
        await get(marker.connects)
        assert marker.client.publish(EVENTS, b"marker", qos=1)
        assert await next_message(obs) == (EVENTS, b"marker")
    assert not device.client.publish(EVENTS, b"late", qos=1)


async def test_wrong_ca_is_refused_logged_once_and_retried(
    mosquitto_broker: MosquittoBroker, make_device: Callable[..., Device], log_watch: LogWatch,
    tmp_path: Path,
) -> None:
    other_ca = Pki(tmp_path / "other-pki", ca_name="some other CA")
    device = make_device(device_settings(mosquitto_broker, ca=str(other_ca.ca_path)))
    await device.client.start()
    await log_watch.wait_for("-> backoff", count=2)  # failed, retried, failed again

    failures = log_watch.matching("-> backoff")
    first = failures[0].getMessage()
    assert failures[0].levelno == logging.WARNING
    assert str(device.client.endpoint) in first
    assert "certificate verify failed" in first
    assert "retry in" in first
    assert failures[1].levelno == logging.DEBUG  # the same reason again is not repeated
    assert not device.client.connected
    assert device.connects.empty()


def test_offline_queue_is_bounded() -> None:
    settings = MqttSettings(url="mqtts://h", client_id=DEVICE, ca=None, cert=None, key=None)
    client = MqttClient(settings, on_message=lambda _t, _p: None)
    assert not client.publish(TELEMETRY, b"{}", qos=0)
    assert all(client.publish(EVENTS, b"%d" % i, qos=1) for i in range(QUEUE_LIMIT))
    assert not client.publish(EVENTS, b"one too many", qos=1)


async def test_broker_restart_reconnects_resubscribes_and_keeps_loop_responsive(
    mosquitto_broker: MosquittoBroker, make_device: Callable[..., Device], log_watch: LogWatch
) -> None:
    device = make_device(device_settings(mosquitto_broker), status=ONLINE)
    device.client.subscribe(RPC_SUB)
    await device.client.start()
    assert await get(device.connects) == 1

    ticker = Ticker()
    await asyncio.to_thread(mosquitto_broker.stop)
    assert (await get(device.disconnects)).startswith(("connection lost", "broker sent"))
    assert not device.client.connected
    assert device.client.publish(EVENTS, b"queued while away", qos=1, retain=True)
    assert not device.client.publish(TELEMETRY, b"{}", qos=0)
    await log_watch.wait_for("Connection refused")  # at least one attempt failed meanwhile

    await asyncio.to_thread(mosquitto_broker.start)
    assert await get(device.connects, timeout=15) == 2
    max_gap = await ticker.stop()
    assert max_gap < 0.2, f"event loop blocked for {max_gap * 1000:.0f} ms"

    async with observer(mosquitto_broker, EVENTS) as obs:
        # The broker lost its retained state in the restart: this copy was flushed afterwards.
        assert await next_message(obs) == (EVENTS, b"queued while away")
        await obs.publish(RPC, b"after restart", qos=1)
        assert await get(device.messages) == (RPC, b"after restart")


async def test_stalled_tls_handshake_blocks_neither_loop_nor_stop(
    make_device: Callable[..., Device], pki: Pki
) -> None:
    loop = asyncio.get_running_loop()
    with socket.create_server(("127.0.0.1", 0)) as server:  # accepts, then never answers
        server.setblocking(False)
        cert, key = pki.issue(DEVICE, server_names=(), client=True)
        device = make_device(MqttSettings(
            url=f"mqtts://127.0.0.1:{server.getsockname()[1]}", client_id=DEVICE,
            ca=str(pki.ca_path), cert=str(cert), key=str(key),
        ))
        ticker = Ticker()
        await device.client.start()
        async with asyncio.timeout(WAIT):
            conn, _ = await loop.sock_accept(server)
        with conn:
            async with asyncio.timeout(WAIT):
                # A TLS handshake record: the ClientHello is out, paho now waits for an answer.
                assert await loop.sock_recv(conn, 1) == b"\x16"
            await ticker.ticks(20)
            async with asyncio.timeout(1.0):
                await device.client.stop()
            assert device.client.state is MqttState.STOPPED
            max_gap = await ticker.stop()
    assert max_gap < 0.2, f"event loop blocked for {max_gap * 1000:.0f} ms"


@pytest.mark.parametrize("will", [False, True], ids=["refused", "unanswered-with-will"])
async def test_falls_back_to_mqtt311_on_amqtt(
    make_device: Callable[..., Device], log_watch: LogWatch, will: bool
) -> None:
    port = free_port()
    broker = Broker({
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {
            "allow_anonymous": True}},
    })
    await broker.start()
    try:
        device = make_device(MqttSettings(
            url=f"mqtt://127.0.0.1:{port}", client_id=DEVICE, ca=None, cert=None, key=None,
            allow_insecure=True, will_topic=STATUS if will else None, will_payload=OFFLINE,
        ))
        device.client.subscribe(RPC_SUB)
        await device.client.start()
        assert await get(device.connects) == 1
        assert device.client.protocol == "3.1.1"
        assert log_watch.matching("MQTT 5 failed")
        # amqtt refuses a bare MQTT 5 CONNECT, and cannot parse one with a will or with
        # properties (ours carries MaximumPacketSize): either way the client falls back.
        assert log_watch.matching("no CONNACK") or log_watch.matching(
            "Unsupported protocol version"
        )

        assert device.client.publish(f"edgecam/{DEVICE}/rpc/self", b"over 3.1.1", qos=1)
        assert await get(device.messages) == (f"edgecam/{DEVICE}/rpc/self", b"over 3.1.1")
        await device.client.stop()
    finally:
        await broker.shutdown()


async def test_websockets_with_password(
    mosquitto_broker: MosquittoBroker, make_device: Callable[..., Device], log_watch: LogWatch
) -> None:
    password = mosquitto_broker.viewers["viewer"]
    topic = "edgecam/viewer/echo"  # the ACL gives user `viewer` its own subtree
    settings = MqttSettings(
        url=f"ws://127.0.0.1:{mosquitto_broker.ws_port}/mqtt", client_id="viewer-1",
        ca=None, cert=None, key=None, username="viewer", password=password,
        allow_insecure=True,
    )
    device = make_device(settings)
    device.client.subscribe(topic)
    await device.client.start()
    assert await get(device.connects) == 1
    assert device.client.publish(topic, b"over websockets", qos=1)
    assert await get(device.messages) == (topic, b"over websockets")
    await device.client.stop()
    assert log_watch.records
    assert not [r for r in log_watch.records if password in r.getMessage()]
    assert password not in repr(settings)


async def test_a_connection_lost_right_after_connack_is_reconnected(
    mosquitto_broker: MosquittoBroker,
) -> None:
    connected = asyncio.Event()
    client = MqttClient(
        device_settings(mosquitto_broker),
        on_message=lambda t, p: None,
        on_connect=connected.set,
    )
    original = client._paho_connect
    injected = False

    def connack_then_loss(c: Any, u: Any, f: Any, reason: Any, props: Any) -> None:
        # What paho does when one read holds both the CONNACK and the end of the connection
        # (a broker that accepts and drops at once, or a client-id takeover).
        nonlocal injected
        original(c, u, f, reason, props)
        if not injected:
            injected = True
            client._abort("read failed: simulated")

    client._paho.on_connect = connack_then_loss
    await client.start()
    try:
        # The lost connection is not taken for a live one: the client connects again.
        await asyncio.wait_for(connected.wait(), WAIT)
        assert injected
        assert client.state is MqttState.CONNECTED and client._link.attached
    finally:
        await client.stop()
