"""An agent on a real mosquitto (TLS + client certificates + ACL), and RPC clients for it."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiomqtt

from agent.config import load_config
from agent.runtime.app import Agent
from tests.e2e.aiortc_viewer import AiortcViewer
from tests.infra.mosquitto import MosquittoBroker

DEVICE = "cam-01"
PREFIX = "edgecam"
WAIT = 20.0


def write_agent_config(
    broker: MosquittoBroker, directory: Path, device: str = DEVICE, **camera: Any
) -> Path:
    """A config file for testsrc device `device` (cam-01) on `broker`, with its own client
    certificate; `camera` overrides the small default stream's size, rate and bitrate."""
    cert, key = broker.issue_client(device)
    size = {"width": 320, "height": 240, "framerate": 30, "bitrate": 500_000, **camera}
    text = f"""
[device]
id = "{device}"
state_dir = "{directory / "state"}"

[mqtt]
url = "mqtts://localhost:{broker.tls_port}"
ca = "{broker.ca_path}"
cert = "{cert}"
key = "{key}"

[camera]
source = "testsrc"
width = {size["width"]}
height = {size["height"]}
framerate = {size["framerate"]}
bitrate = {size["bitrate"]}

[webrtc]
ice_addresses = ["127.0.0.1"]
offer_rate_limit = {{ count = 20, period = 10.0 }}

[access]
viewer = ["viewer-*"]
operator = ["ops-*"]
admin = ["admin-*"]

[telemetry]
interval = 1.0
"""
    path = directory / "edgecam.toml"
    path.write_text(text)
    return path


@contextlib.asynccontextmanager
async def running_agent(broker: MosquittoBroker, directory: Path) -> AsyncIterator[Agent]:
    agent = Agent(load_config(write_agent_config(broker, directory)))
    await agent.start()
    await agent.mqtt.wait_connected(WAIT)
    try:
        yield agent
    finally:
        await agent.stop()


class RpcClient:
    """A viewer or controller: JSON-RPC over its own rpc/C topics, with its own certificate."""

    def __init__(self, broker: MosquittoBroker, client_id: str, device: str = DEVICE) -> None:
        self.broker = broker
        self.client_id = client_id
        self.request_topic = f"{PREFIX}/{device}/rpc/{client_id}"
        self.reply_topic = f"{self.request_topic}/reply"
        self._ids = itertools.count(1)
        self._pending: dict[Any, asyncio.Future[dict[str, Any]]] = {}
        self.notifications: list[dict[str, Any]] = []
        # Everything on the reply topic in arrival order: "response" or the method notified.
        self.arrivals: list[str] = []
        self.responses: list[dict[str, Any]] = []
        self.other: list[tuple[str, bytes]] = []
        self._changed = asyncio.Event()
        self._stack = contextlib.AsyncExitStack()
        self.client: aiomqtt.Client | None = None

    async def __aenter__(self) -> RpcClient:
        self.client = await self._stack.enter_async_context(
            aiomqtt.Client(
                "127.0.0.1",
                self.broker.tls_port,
                identifier=self.client_id,
                protocol=aiomqtt.ProtocolVersion.V5,
                tls_context=self.broker.client_tls_context(self.client_id),
            )
        )
        await self.client.subscribe(self.reply_topic, qos=1)
        reader = asyncio.create_task(self._read())
        self._stack.callback(reader.cancel)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def _read(self) -> None:
        assert self.client is not None
        async for message in self.client.messages:
            payload = message.payload
            assert isinstance(payload, bytes)
            topic = message.topic.value
            if topic != self.reply_topic:
                self.other.append((topic, payload))
            else:
                body = json.loads(payload)
                self.arrivals.append(body.get("method", "response"))
                if "method" not in body:
                    self.responses.append(body)
                future = self._pending.pop(body.get("id"), None) if "id" in body else None
                if future is not None and not future.done():
                    future.set_result(body)
                elif "method" in body:
                    self.notifications.append(body)
            self._changed.set()

    def responses_for(self, request_id: Any) -> int:
        return sum(1 for body in self.responses if body.get("id") == request_id)

    async def wait_for_response(self, request_id: Any, timeout: float = WAIT) -> None:
        async def arrived() -> None:
            while not self.responses_for(request_id):
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(arrived(), timeout)

    async def publish(self, payload: bytes, topic: str | None = None) -> None:
        assert self.client is not None
        await self.client.publish(topic or self.request_topic, payload, qos=1)

    async def request(self, method: str, params: Any = None) -> dict[str, Any]:
        """The whole JSON-RPC response (result or error)."""
        request_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or {}}
        await self.publish(json.dumps(body).encode())
        return await asyncio.wait_for(future, WAIT)

    async def call(self, method: str, params: Any = None) -> Any:
        """The result; fails the test on an error response."""
        response = await self.request(method, params)
        assert "error" not in response, f"{method}: {response['error']}"
        return response["result"]

    async def raw_request(self, payload: bytes, request_id: Any) -> dict[str, Any]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        await self.publish(payload)
        return await asyncio.wait_for(future, WAIT)

    async def notify(self, method: str, params: Any) -> None:
        body = {"jsonrpc": "2.0", "method": method, "params": params}
        await self.publish(json.dumps(body).encode())

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = WAIT
    ) -> dict[str, Any]:
        async def found() -> dict[str, Any]:
            while True:
                for note in self.notifications:
                    if predicate(note):
                        return note
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(found(), timeout)

    async def wait_state(self, session: str, state: str) -> dict[str, Any]:
        return await self.wait_for(
            lambda n: (
                n.get("method") == "webrtc.state"
                and n["params"].get("session") == session
                and n["params"].get("state") == state
            )
        )


async def watch(client: RpcClient, session: str) -> AiortcViewer:
    """Offer over MQTT, apply the answer and trickled candidates, wait for 'connected'."""
    viewer = AiortcViewer()
    result = await client.call("webrtc.offer", {"session": session, "sdp": await viewer.offer()})
    assert result["session"] == session
    assert "a=ice-options:trickle" in result["sdp"]
    await viewer.accept(result["sdp"])
    await client.wait_state(session, "connected")
    return viewer


@contextlib.asynccontextmanager
async def observer(broker: MosquittoBroker, *topics: str) -> AsyncIterator[aiomqtt.Client]:
    """An independent client (certificate CN 'observer') subscribed to `topics`."""
    async with aiomqtt.Client(
        "127.0.0.1",
        broker.tls_port,
        identifier="observer",
        tls_context=broker.client_tls_context("observer"),
    ) as client:
        for topic in topics:
            await client.subscribe(topic, qos=1)
        yield client


async def next_json(
    client: aiomqtt.Client, topic: str, predicate: Callable[[Any], bool], timeout: float = WAIT
) -> Any:
    async def find() -> Any:
        async for message in client.messages:
            if message.topic.value == topic:
                assert isinstance(message.payload, bytes)
                body = json.loads(message.payload)
                if predicate(body):
                    return body
        raise AssertionError("observer disconnected")

    return await asyncio.wait_for(find(), timeout)
