"""agent/signaling/rpc_transport.py: requests from ``P/D/rpc/C`` to the dispatcher, replies to
``P/D/rpc/C/reply``, each client bounded on its own (rate, requests waiting) and every refusal
counted in ``dropped``. MqttClient.publish (our own class) is replaced by a recording double;
the dispatcher is the real one, serving a small method table."""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

import pytest

from agent.rpc.dispatcher import Dispatcher
from agent.rpc.methods import CallContext, MethodTable
from agent.rpc.params import Kind, Param, ParamSpec
from agent.rpc.roles import Role
from agent.signaling.mqtt import MqttClient
from agent.signaling.rpc_transport import (
    MAX_MESSAGE,
    MAX_WAITING_PER_CLIENT,
    MqttRpcTransport,
    RequestLimits,
)
from agent.signaling.topics import Topics

TOPICS = Topics("edgecam", "cam-01")
WAIT = 5.0


class RecordingMqtt:
    """MqttClient.publish, recorded; returns `accept` like the real one's True/False."""

    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, Any], int, str | None]] = []
        self.accept = True
        self._changed = asyncio.Event()

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 0,
        retain: bool = False,
        owner: str | None = None,
    ) -> bool:
        assert not retain
        self.published.append((topic, json.loads(payload), qos, owner))
        self._changed.set()
        return self.accept

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(WAIT):
            while len(self.published) < count:
                self._changed.clear()
                await self._changed.wait()

    def replies_to(self, client: str) -> list[dict[str, Any]]:
        return [body for topic, body, _, _ in self.published if topic == TOPICS.reply(client)]


class Server:
    """The method table behind the transport: `echo`, and `hold`, which waits for `release`."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.held = asyncio.Event()
        self.holding = 0
        self.calls: list[tuple[str, str]] = []
        table = MethodTable()
        table.register(
            "echo", self.echo, min_role=Role.VIEWER, params=ParamSpec({"value": Param(Kind.INT)})
        )
        table.register("hold", self.hold, min_role=Role.VIEWER)
        self.dispatcher = Dispatcher(table, lambda client: Role.VIEWER)

    def echo(self, ctx: CallContext, params: dict[str, Any]) -> Any:
        self.calls.append((ctx.client_id, "echo"))
        return params.get("value")

    async def hold(self, ctx: CallContext, params: dict[str, Any]) -> str:
        self.calls.append((ctx.client_id, "hold"))
        self.holding += 1
        self.held.set()
        await self.release.wait()
        return "released"


class Rig:
    def __init__(self, limits: RequestLimits | None = None) -> None:
        self.mqtt = RecordingMqtt()
        self.server = Server()
        self.now = 100.0
        self.handled = 0
        self.transport = MqttRpcTransport(
            cast(MqttClient, self.mqtt),
            TOPICS,
            self.server.dispatcher,
            clock=lambda: self.now,
            limits=limits or RequestLimits(),
            on_handled=self._handled,
        )

    def _handled(self) -> None:
        self.handled += 1

    def send(self, client: str, method: str = "echo", request_id: Any = 1, **params: Any) -> None:
        body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        self.transport.on_message(f"edgecam/cam-01/rpc/{client}", json.dumps(body).encode())

    async def settle(self) -> None:
        """Wait until every request handed to the transport has been served."""
        async with asyncio.timeout(WAIT):
            while self.transport._tasks:
                await asyncio.gather(*self.transport._tasks, return_exceptions=True)


@pytest.fixture
async def rig() -> Any:
    made = Rig()
    yield made
    made.server.release.set()
    await made.transport.close()


async def test_a_reply_goes_to_the_callers_reply_topic_as_its_owner(rig: Rig) -> None:
    rig.send("ops-1", value=7, request_id="r-1")
    rig.send("viewer-2", value=8, request_id=2)
    await rig.settle()
    assert sorted(rig.mqtt.published, key=lambda p: p[0]) == [
        (
            "edgecam/cam-01/rpc/ops-1/reply",
            {"jsonrpc": "2.0", "id": "r-1", "result": 7},
            1,
            "ops-1",
        ),
        (
            "edgecam/cam-01/rpc/viewer-2/reply",
            {"jsonrpc": "2.0", "id": 2, "result": 8},
            1,
            "viewer-2",
        ),
    ]
    assert rig.server.calls == [("ops-1", "echo"), ("viewer-2", "echo")]
    assert rig.handled == 2
    assert rig.transport.dropped == {}


@pytest.mark.parametrize(
    "topic",
    [
        "edgecam/cam-01/rpc/ops-1/reply",  # our own replies, echoed back
        "edgecam/cam-01/rpc/",
        "edgecam/cam-02/rpc/ops-1",
        "edgecam/cam-01/status",
        "other/cam-01/rpc/ops-1",
    ],
)
async def test_a_message_on_any_other_topic_is_ignored(rig: Rig, topic: str) -> None:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "echo"}).encode()
    rig.transport.on_message(topic, body)
    await rig.settle()
    assert rig.mqtt.published == []
    assert rig.server.calls == []
    assert rig.transport.dropped == {"topic": 1}


async def test_an_oversized_message_is_dropped_unread(rig: Rig) -> None:
    body = b'{"jsonrpc":"2.0","id":1,"method":"echo","params":{"pad":"' + b"x" * MAX_MESSAGE
    rig.transport.on_message("edgecam/cam-01/rpc/ops-1", body + b'"}}')
    await rig.settle()
    assert rig.mqtt.published == []
    assert rig.transport.dropped == {"size": 1}


async def test_a_message_too_large_for_the_dispatcher_is_answered_invalid(rig: Rig) -> None:
    # Under the transport's cut-off but over the dispatcher's 64 KiB: -32600 with the id.
    body = b'{"jsonrpc":"2.0","id":9,"method":"echo","params":{"pad":"' + b"x" * 70_000 + b'"}}'
    rig.transport.on_message("edgecam/cam-01/rpc/ops-1", body)
    await rig.settle()
    [reply] = rig.mqtt.replies_to("ops-1")
    assert reply["id"] == 9 and reply["error"]["code"] == -32600
    assert rig.transport.dropped == {}


async def test_over_its_rate_a_client_gets_rate_limited_with_its_request_id() -> None:
    rig = Rig(RequestLimits(rate=1.0, burst=2.0))
    try:
        for i in range(3):
            rig.send("ops-1", value=i, request_id=f"r-{i}")
        rig.send("viewer-2", value=5, request_id="other")  # another client: its own bucket
        await rig.settle()
        replies = {body["id"]: body for body in rig.mqtt.replies_to("ops-1")}
        assert replies["r-0"]["result"] == 0 and replies["r-1"]["result"] == 1
        assert replies["r-2"]["error"]["code"] == -32005
        assert rig.mqtt.replies_to("viewer-2") == [{"jsonrpc": "2.0", "id": "other", "result": 5}]
        assert rig.server.calls == [("ops-1", "echo")] * 2 + [("viewer-2", "echo")]
        assert rig.transport.dropped == {"rate": 1}
        # Time refills the bucket.
        rig.now += 1.0
        rig.send("ops-1", value=3, request_id="r-3")
        await rig.settle()
        assert rig.mqtt.replies_to("ops-1")[-1] == {"jsonrpc": "2.0", "id": "r-3", "result": 3}
    finally:
        await rig.transport.close()


async def test_a_rate_limited_message_without_a_readable_id_gets_no_reply() -> None:
    rig = Rig(RequestLimits(rate=1.0, burst=1.0))
    try:
        rig.send("ops-1", value=1)
        rig.transport.on_message("edgecam/cam-01/rpc/ops-1", b"not json at all")
        await rig.settle()
        assert len(rig.mqtt.published) == 1
        assert rig.transport.dropped == {"rate": 1}
    finally:
        await rig.transport.close()


async def test_the_backlog_cap_drops_only_that_clients_requests() -> None:
    rig = Rig(RequestLimits(rate=1000.0, burst=1000.0))
    try:
        extra = 3
        for i in range(MAX_WAITING_PER_CLIENT + extra):
            rig.send("flood", "hold", request_id=i)
        rig.send("calm", value=1, request_id="calm-1")
        await rig.mqtt.wait_for(1)
        # The flooding client's requests wait; the other client is answered meanwhile.
        assert rig.mqtt.published == [
            (
                "edgecam/cam-01/rpc/calm/reply",
                {"jsonrpc": "2.0", "id": "calm-1", "result": 1},
                1,
                "calm",
            )
        ]
        assert rig.transport.dropped == {"backlog": extra}
        rig.server.release.set()
        await rig.settle()
        ids = sorted(body["id"] for body in rig.mqtt.replies_to("flood"))
        assert ids == list(range(MAX_WAITING_PER_CLIENT))
        # Once its backlog has drained, the client is served again.
        rig.send("flood", value=2, request_id="after")
        await rig.settle()
        assert rig.mqtt.replies_to("flood")[-1]["id"] == "after"
        assert rig.transport.dropped == {"backlog": extra}
    finally:
        rig.server.release.set()
        await rig.transport.close()


async def test_a_reply_the_client_refuses_is_counted(rig: Rig) -> None:
    rig.mqtt.accept = False
    rig.send("ops-1", value=1)
    await rig.settle()
    assert len(rig.mqtt.published) == 1
    assert rig.transport.dropped == {"reply": 1}


async def test_notify_goes_to_the_clients_reply_topic(rig: Rig) -> None:
    rig.transport.notify("viewer-2", b'{"jsonrpc":"2.0","method":"webrtc.state"}')
    assert rig.mqtt.published == [
        (
            "edgecam/cam-01/rpc/viewer-2/reply",
            {"jsonrpc": "2.0", "method": "webrtc.state"},
            1,
            "viewer-2",
        )
    ]


async def test_close_cancels_requests_in_progress_and_takes_no_new_ones(rig: Rig) -> None:
    rig.send("ops-1", "hold")
    async with asyncio.timeout(WAIT):
        await rig.server.held.wait()
    await rig.transport.close()
    assert rig.server.holding == 1
    rig.send("ops-1", value=1)
    await rig.settle()
    assert rig.mqtt.published == []
    assert rig.server.calls == [("ops-1", "hold")]
