"""Tests of agent/signaling/rpc.py: the JSON-RPC 2.0 dispatcher (PROTOCOL.md 3, 4, 7)."""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.rpc.dispatcher import MAX_BATCH, Dispatcher
from agent.rpc.errors import ErrorCode, RpcError
from agent.rpc.methods import CallContext, MethodTable, Origin, Params, Transport
from agent.rpc.params import NO_PARAMS, SESSION_ID, Kind, Param, ParamSpec
from agent.rpc.roles import Role
from agent.rpc.wire import ID_SCAN_BYTES, notification, peek_id

SECRET = "hunter2-api-key-0xDEADBEEF"
LOGGER = "agent.rpc.dispatcher"

CLIENT_ROLES = {"viewer-1": Role.VIEWER, "ops-1": Role.OPERATOR, "admin-1": Role.ADMIN}
VIEWER = Origin("viewer-1", Transport.MQTT)
STRANGER = Origin("nobody", Transport.MQTT)
DATACHANNEL = Origin("viewer-1", Transport.DATACHANNEL, session="s-1")

APP_ERRORS: dict[int, Callable[..., RpcError]] = {
    -32001: RpcError.unauthorized,
    -32002: RpcError.busy,
    -32003: RpcError.unknown_session,
    -32004: RpcError.negotiation_failed,
    -32005: RpcError.rate_limited,
    -32006: RpcError.camera_unavailable,
}


def _echo(ctx: CallContext, params: Params) -> Any:
    return {
        "params": params,
        "client": ctx.client_id,
        "role": ctx.role.name,
        "transport": ctx.transport.value,
        "session": ctx.session,
    }


def _crash(ctx: CallContext, params: Params) -> Any:
    raise RuntimeError(f"database password is {SECRET}")


def _fail(ctx: CallContext, params: Params) -> Any:
    raise APP_ERRORS[params["code"]](data={"why": "test"})


def _fail_with_bad_data(ctx: CallContext, params: Params) -> Any:
    raise RpcError.busy(data={"obj": object()})


def _even_only(params: Params) -> Params:
    if params.get("value", 0) % 2:
        raise RpcError.invalid_params("params.value: expected an even number")
    return {"value": params.get("value", 0), "checked": True}


SESSION_ONLY = ParamSpec({"session": SESSION_ID})
ECHO_SPEC = ParamSpec(
    {
        "text": Param(Kind.STR),
        "n": Param(Kind.INT, minimum=1, maximum=100),
        "mode": Param(Kind.STR, choices=("fast", "slow")),
        "flag": Param(Kind.BOOL),
        "rate": Param(Kind.NUMBER, minimum=0),
        "candidate": Param(Kind.STR, nullable=True),
        "name": Param(Kind.STR, min_length=2, max_length=4),
    }
)


class Harness:
    """A dispatcher over a table of test methods, recording every call that reached one."""

    def __init__(self, role_for: Callable[[str], Role | None] = CLIENT_ROLES.get) -> None:
        self.calls: list[tuple[str, CallContext, Params]] = []
        self.table = MethodTable()
        self.add("test.echo", _echo, params=ECHO_SPEC)
        self.add("test.session", {}, params=SESSION_ONLY)
        for role in Role:
            self.add(f"test.{role.name.lower()}", role.name, min_role=role, params=SESSION_ONLY)
        self.add("test.crash", _crash)
        self.add("test.unjsonable", lambda c, p: object())
        self.add("test.nan", math.nan)
        self.add("test.fail", _fail, params=ParamSpec({"code": Param(Kind.INT, required=True)}))
        self.add("test.baddata", _fail_with_bad_data)
        self.add("test.validator", lambda c, p: p, params=_even_only)
        self.add("webrtc.offer", {"sdp": "answer"}, params=SESSION_ONLY)

        async def slow(ctx: CallContext, params: Params) -> Any:
            self.calls.append(("test.async", ctx, params))
            await asyncio.sleep(0)
            return {"async": True}

        self.table.register("test.async", slow, min_role=Role.VIEWER)
        self.dispatcher = Dispatcher(self.table, role_for)

    def add(
        self, name: str, result: Any, *, min_role: Role = Role.VIEWER, params: Any = NO_PARAMS
    ) -> None:
        """Register `name` returning `result`, or `result(ctx, params)` if it is callable."""

        def handler(ctx: CallContext, checked: Params) -> Any:
            self.calls.append((name, ctx, checked))
            return result(ctx, checked) if callable(result) else result

        self.table.register(name, handler, min_role=min_role, params=params)

    async def raw(self, payload: bytes, origin: Origin = VIEWER) -> bytes | None:
        return await self.dispatcher.handle(payload, origin)

    async def send(self, message: Any, origin: Origin = VIEWER) -> Any:
        raw = message if isinstance(message, bytes) else json.dumps(message).encode()
        reply = await self.raw(raw, origin)
        if reply is None:
            return None
        assert_valid_reply(reply)
        return json.loads(reply)


def request(method: str, params: Any = None, id: Any = 1) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        message["params"] = params
    return message


def note(method: str, params: Any = None) -> dict[str, Any]:
    message = request(method, params)
    del message["id"]
    return message


def _no_constants(name: str) -> Any:
    raise AssertionError(f"reply contains {name}, which is not JSON")


def assert_response(item: Any) -> None:
    assert isinstance(item, dict)
    assert item.get("jsonrpc") == "2.0"
    assert set(item) in ({"jsonrpc", "id", "result"}, {"jsonrpc", "id", "error"}), item
    assert item["id"] is None or isinstance(item["id"], str | int | float)
    assert not isinstance(item["id"], bool)
    if "error" in item:
        error = item["error"]
        assert isinstance(error, dict)
        assert set(error) <= {"code", "message", "data"}
        assert isinstance(error["code"], int) and not isinstance(error["code"], bool)
        assert error["code"] in set(ErrorCode)
        assert isinstance(error["message"], str)


def assert_valid_reply(reply: bytes) -> None:
    """A reply is compact ASCII JSON: one response, or a non-empty array of them."""
    text = reply.decode("ascii")
    value = json.loads(text, parse_constant=_no_constants)
    assert json.dumps(value, separators=(",", ":")) == text
    if isinstance(value, list):
        assert value
        for item in value:
            assert_response(item)
    else:
        assert_response(value)


def records_of(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == LOGGER]


def error_of(reply: Any) -> tuple[Any, int, str]:
    assert isinstance(reply, dict) and "error" in reply, reply
    return reply["id"], reply["error"]["code"], reply["error"]["message"]


# --- successful calls -------------------------------------------------------------------------


async def test_request_gets_compact_result() -> None:
    h = Harness()
    reply = await h.raw(
        b'{"jsonrpc": "2.0", "id": 7, "method": "test.viewer", "params": {"session": "abc"}}'
    )
    assert reply == b'{"jsonrpc":"2.0","id":7,"result":"VIEWER"}'


async def test_handler_gets_context_and_checked_params() -> None:
    h = Harness()
    params = dict(text="hi", n=100, mode="slow", flag=False, rate=2.5, candidate=None, name="ab")
    reply = await h.send(request("test.echo", params, id="req-1"), DATACHANNEL)
    expected = _echo(CallContext("viewer-1", Role.VIEWER, Transport.DATACHANNEL, "s-1"), params)
    assert reply == {"jsonrpc": "2.0", "id": "req-1", "result": expected}


async def test_missing_params_means_empty_object() -> None:
    h = Harness()
    reply = await h.send(request("test.echo"))
    assert reply["result"]["params"] == {}


async def test_async_handler_is_awaited() -> None:
    h = Harness()
    assert (await h.send(request("test.async")))["result"] == {"async": True}


async def test_custom_validator_output_reaches_handler() -> None:
    h = Harness()
    reply = await h.send(request("test.validator", {"value": 4}))
    assert reply["result"] == {"value": 4, "checked": True}
    _, code, message = error_of(await h.send(request("test.validator", {"value": 3})))
    assert (code, message) == (-32602, "params.value: expected an even number")


async def test_null_id_is_a_request_and_is_answered() -> None:
    h = Harness()
    reply = await h.send(request("test.async", id=None))
    assert reply == {"jsonrpc": "2.0", "id": None, "result": {"async": True}}


# --- -32700 parse error -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "expected_id"),
    [
        (b'{"jsonrpc":"2.0","id":7,"method":"test.echo","params":{', 7),
        (b'{"jsonrpc":"2.0","id":"x","method":"test.echo","params":{"text":"\xff"}}', "x"),
        (b'{"jsonrpc":"2.0","id":3,"method":"test.echo","params":{"rate":NaN}}', 3),
        (b'{"jsonrpc":"2.0","id":3,"method":"test.echo","params":{"rate":-Infinity}}', 3),
        (b'{"jsonrpc":"2.0","id":4,"method":"test.echo","params":{"rate":1e400}}', 4),
        (b'{"jsonrpc":"2.0","id":5,"method":"test.echo","params":' + b"[" * 50_000, 5),
        (b'{"id":6,"id":8,"method":', 8),
    ],
)
async def test_unparseable_payload_with_readable_id_gets_parse_error(
    payload: bytes, expected_id: Any
) -> None:
    h = Harness()
    request_id, code, message = error_of(await h.send(payload))
    assert (request_id, code) == (expected_id, -32700)
    assert message.startswith("parse error")
    assert h.calls == []


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"not json",
        b"\xff\xfe\x00",
        b"[" * 60_000,
        b'{"method":"test.echo","params":{"id":5},',  # an id inside params is not the id
        b'{"jsonrpc":"2.0","method":"test.echo","params":{"text":"\xff"}}',  # a notification
        b'{"id":{"a":1},"method":',  # an object is not an id
        b'\xef\xbb\xbf{"jsonrpc":"2.0","id":1,"method":"test.async"}',  # BOM
    ],
)
async def test_unparseable_payload_without_readable_id_is_answered_with_id_null_and_logged(
    payload: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """PROTOCOL.md section 3: where no id can be read, the error goes out with "id": null."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    h = Harness()
    reply = await h.raw(payload)
    assert reply is not None
    answer = json.loads(reply)
    assert answer["id"] is None and answer["error"]["code"] == -32700
    [record] = records_of(caplog)
    assert "viewer-1" in record.getMessage() and "-32700" in record.getMessage()


def test_peek_id_ignores_a_value_cut_off_by_the_scan_limit() -> None:
    pad = b'{"pad":"' + b"x" * (ID_SCAN_BYTES - 20) + b'",'
    whole = pad + b'"id":1234567890123}'
    assert len(pad) < ID_SCAN_BYTES < len(whole)
    assert peek_id(whole) == (False, None)
    assert peek_id(pad[:100] + b'","id":1234567890123}') == (True, 1234567890123)


def test_peek_id_reads_only_top_level_members() -> None:
    assert peek_id(b' {"params": {"id": 1}, "id" : "top", "x": [') == (True, "top")
    assert peek_id(b'[{"id": 1}]') == (False, None)
    assert peek_id(b'{"id": true, "x"') == (False, None)
    assert peek_id(b'{"id": null}') == (True, None)


# --- -32600 invalid request -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "expected_id"),
    [
        ({"id": 1, "method": "test.async"}, 1),
        ({"jsonrpc": "1.0", "id": 2, "method": "test.async"}, 2),
        ({"jsonrpc": 2.0, "id": 3, "method": "test.async"}, 3),
        ({"jsonrpc": "2.0", "id": 4}, 4),
        ({"jsonrpc": "2.0", "id": 5, "method": 5}, 5),
        ({"jsonrpc": "2.0", "id": 6, "method": None}, 6),
        ({"jsonrpc": "2.0", "id": 7, "method": "test.echo", "params": "text"}, 7),
        ({"jsonrpc": "2.0", "id": 8, "method": "test.echo", "params": None}, 8),
        ({"jsonrpc": "2.0", "id": True, "method": "test.async"}, None),
        ({"jsonrpc": "2.0", "id": [1], "method": "test.async"}, None),
        ({"jsonrpc": "2.0", "method": 1, "params": "bar"}, None),  # JSON-RPC 2.0 spec example
        (5, None),
        ("a string", None),
        (None, None),
        ([], None),
        ([None] * (MAX_BATCH + 1), None),
    ],
)
async def test_invalid_request(message: Any, expected_id: Any) -> None:
    h = Harness()
    request_id, code, _ = error_of(await h.send(message))
    assert (request_id, code) == (expected_id, -32600)
    assert h.calls == []


async def test_payload_limit_is_64_kib_checked_before_parsing() -> None:
    h = Harness()
    head = b'{"jsonrpc":"2.0","id":1,"method":"test.echo","params":{"text":"'
    tail = b'"}}'

    def sized(size: int) -> bytes:
        return head + b"x" * (size - len(head) - len(tail)) + tail

    ok = await h.raw(sized(65536))
    assert ok is not None and b'"result"' in ok
    assert len(h.calls) == 1

    request_id, code, message = error_of(json.loads(await h.raw(sized(65537)) or b"null"))
    assert (request_id, code) == (1, -32600)
    assert message == "payload too large: 65537 bytes, limit 65536"
    assert len(h.calls) == 1


async def test_oversized_payload_is_answered_wherever_its_id_is() -> None:
    # PROTOCOL.md section 3: answered "where an id can be read", also after large params.
    h = Harness()
    payload = (
        b'{"jsonrpc":"2.0","method":"test.echo","params":{"text":"' + b"x" * 70_000 + b'"},"id":1}'
    )
    reply = await h.raw(payload)
    assert reply is not None and error_of(json.loads(reply))[:2] == (1, -32600)


# --- -32601 method not found ------------------------------------------------------------------


async def test_unknown_method() -> None:
    h = Harness()
    reply = await h.send(request("no.such", id=9))
    assert error_of(reply) == (9, -32601, "method not found: no.such")


async def test_webrtc_methods_are_mqtt_only_the_rest_served_on_both() -> None:
    h = Harness()
    ok = await h.send(request("webrtc.offer", {"session": "s-1"}), VIEWER)
    assert ok["result"] == {"sdp": "answer"}
    _, code, message = error_of(
        await h.send(request("webrtc.offer", {"session": "s-1"}), DATACHANNEL)
    )
    assert code == -32601
    assert message == "method not found: webrtc.offer is only served over mqtt"
    assert [name for name, *_ in h.calls] == ["webrtc.offer"]
    assert "result" in await h.send(request("test.viewer", {"session": "a"}), DATACHANNEL)


# --- -32602 invalid params (every ParamSpec rule: tests/signaling/test_params.py) -------------

BAD_SESSION = "params.session: expected 1-64 characters of A-Za-z0-9_-"


@pytest.mark.parametrize(
    ("method", "params", "message"),
    [
        ("test.session", {}, "params.session: required"),
        ("test.session", {"session": "a b"}, BAD_SESSION),
        ("test.session", {"session": "ok", "sesion": "x"}, "params.sesion: unknown field"),
        ("test.async", {"b": 1, "a": 2}, "params.a, params.b: unknown fields"),
        ("test.echo", {"n": 0}, "params.n: expected an integer in 1..100"),
        ("test.echo", {"candidate": 5}, "params.candidate: expected a string or null"),
        ("test.echo", ["positional"], "params: expected an object (by-name params)"),
    ],
)
async def test_invalid_params_names_the_field(method: str, params: Any, message: str) -> None:
    h = Harness()
    assert error_of(await h.send(request(method, params, id="p"))) == ("p", -32602, message)
    assert h.calls == []


# --- -32603 internal error --------------------------------------------------------------------


async def test_exception_becomes_internal_error_without_its_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    h = Harness()
    reply = await h.raw(json.dumps(request("test.crash", id=11)).encode())
    assert reply == b'{"jsonrpc":"2.0","id":11,"error":{"code":-32603,"message":"internal error"}}'
    [record] = records_of(caplog)
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None  # the traceback stays on the device
    assert "viewer-1" in record.getMessage() and "test.crash" in record.getMessage()


@pytest.mark.parametrize("method", ["test.unjsonable", "test.nan"])
async def test_result_that_is_not_json_becomes_internal_error(method: str) -> None:
    h = Harness()
    assert error_of(await h.send(request(method))) == (1, -32603, "internal error")


async def test_role_lookup_failure_becomes_internal_error() -> None:
    def broken(client_id: str) -> Role | None:
        raise KeyError(SECRET)

    h = Harness(role_for=broken)
    reply = await h.raw(json.dumps(request("test.async")).encode())
    assert reply is not None and SECRET.encode() not in reply
    assert error_of(json.loads(reply)) == (1, -32603, "internal error")


# --- application errors -32001..-32006 raised by methods --------------------------------------


@pytest.mark.parametrize("code", sorted(APP_ERRORS))
async def test_method_errors_reach_the_client_with_their_data(code: int) -> None:
    h = Harness()
    reply = await h.send(request("test.fail", {"code": code}, id="f"))
    assert reply["error"]["code"] == code
    assert reply["error"]["data"] == {"why": "test"}
    assert reply["id"] == "f"


async def test_error_data_that_is_not_json_is_left_out() -> None:
    h = Harness()
    reply = await h.send(request("test.baddata"))
    assert reply["error"] == {"code": -32002, "message": "busy: viewer limit reached"}


# --- -32001 roles -----------------------------------------------------------------------------

# Every transport, the datachannel included: it serves the same table with the role of the
# client whose MQTT offer made the session (PROTOCOL.md 6), so it must enforce it the same way.
CALLERS = [
    (role, Origin(client, transport, session=None if transport is Transport.MQTT else "s-1"))
    for transport in Transport
    for client, role in [("nobody", None), *CLIENT_ROLES.items()]
]


@pytest.mark.parametrize("min_role", list(Role), ids=lambda r: r.name)
@pytest.mark.parametrize(
    ("caller_role", "origin"),
    CALLERS,
    ids=[f"{origin.transport.value}-{origin.client_id}" for _, origin in CALLERS],
)
async def test_role_enforcement(min_role: Role, caller_role: Role | None, origin: Origin) -> None:
    h = Harness()
    method = f"test.{min_role.name.lower()}"
    reply = await h.send(request(method, {"session": "s"}), origin)
    if caller_role is not None and caller_role >= min_role:
        assert reply["result"] == min_role.name
        assert h.calls[0][1].role is caller_role
        assert h.calls[0][1].transport is origin.transport
    else:
        assert error_of(reply)[1] == -32001
        assert h.calls == []


@pytest.mark.parametrize("transport", list(Transport), ids=lambda t: t.value)
async def test_every_registered_method_refuses_a_client_with_no_role(transport: Transport) -> None:
    h = Harness()
    stranger = Origin("nobody", transport, session="s-1")
    for method in h.table:
        reply = await h.send(request(method.name, {"session": "s"}), stranger)
        assert error_of(reply)[1:] == (-32001, "unauthorized: client has no role"), method.name
    assert error_of(await h.send(request("no.such"), stranger))[1] == -32001
    assert h.calls == []


async def test_role_is_checked_before_params() -> None:
    h = Harness()
    reply = await h.send(request("test.admin", {"session": "bad id!"}), VIEWER)
    assert error_of(reply)[1:] == (-32001, "unauthorized: test.admin needs role admin")


# --- notifications ----------------------------------------------------------------------------


async def test_notification_is_executed_but_never_answered() -> None:
    h = Harness()
    assert await h.send(note("test.session", {"session": "abc"})) is None
    assert [name for name, *_ in h.calls] == ["test.session"]


@pytest.mark.parametrize(
    ("message", "origin"),
    [
        (note("no.such"), VIEWER),
        (note("test.session", {"session": "bad id"}), VIEWER),
        (note("test.async"), STRANGER),
        (note("test.admin", {"session": "x"}), VIEWER),
        (note("test.crash"), VIEWER),
        (note("webrtc.offer", {"session": "x"}), DATACHANNEL),
        (note("test.fail", {"code": -32003}), VIEWER),
    ],
)
async def test_failing_notification_is_silent_but_logged_once(
    message: Any, origin: Origin, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    h = Harness()
    assert await h.send(message, origin) is None
    [record] = records_of(caplog)
    assert origin.client_id in record.getMessage() and message["method"] in record.getMessage()


@pytest.mark.parametrize(
    "message",
    [
        {"jsonrpc": "2.0", "id": 1, "result": {}},
        {"jsonrpc": "2.0", "id": 1, "error": {"code": -32601, "message": "method not found"}},
        {"id": None, "error": "garbage"},
    ],
)
async def test_responses_are_dropped_never_answered(message: Any) -> None:
    h = Harness()
    assert await h.send(message) is None


# --- batches ----------------------------------------------------------------------------------


async def test_batch_answers_each_request_in_order_and_skips_notifications() -> None:
    h = Harness()
    batch = [
        request("test.viewer", {"session": "a"}, id=1),
        note("test.session", {"session": "b"}),
        7,
        request("no.such", id=2),
        {"jsonrpc": "2.0", "id": 99, "result": 0},
        request("test.crash", id=3),
        request("test.session", {"session": ""}, id=4),
        note("test.crash"),
    ]
    reply = await h.send(batch)
    assert [item["id"] for item in reply] == [1, None, 2, 3, 4]
    assert reply[0]["result"] == "VIEWER"
    assert [item["error"]["code"] for item in reply[1:]] == [-32600, -32601, -32603, -32602]
    assert [name for name, *_ in h.calls] == [
        "test.viewer",
        "test.session",
        "test.crash",
        "test.crash",
    ]


async def test_batch_of_notifications_gets_no_reply() -> None:
    h = Harness()
    assert await h.send([note("test.async"), note("no.such")]) is None
    assert len(h.calls) == 1


async def test_batch_at_the_limit_is_served() -> None:
    h = Harness()
    reply = await h.send([request("test.async", id=i) for i in range(MAX_BATCH)])
    assert [item["id"] for item in reply] == list(range(MAX_BATCH))


# --- logging, builders, table -----------------------------------------------------------------


async def test_each_error_is_logged_once_with_client_method_and_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    h = Harness()
    await h.send(request("test.session", {"session": "!"}, id=5))
    [record] = records_of(caplog)
    assert record.levelno == logging.WARNING
    for part in ("viewer-1", "mqtt", "test.session", "-32602", "params.session"):
        assert part in record.getMessage()
    caplog.clear()
    await h.send(request("no\nsuch"))  # a client cannot forge log lines
    [record] = records_of(caplog)
    assert "\n" not in record.getMessage() and "no\\nsuch" in record.getMessage()


def test_notification_builder() -> None:
    assert notification("webrtc.state", {"session": "s", "state": "connected"}) == (
        b'{"jsonrpc":"2.0","method":"webrtc.state","params":{"session":"s","state":"connected"}}'
    )
    assert notification("stream.changed") == b'{"jsonrpc":"2.0","method":"stream.changed"}'


def test_table_registration_rules() -> None:
    table = MethodTable()
    table.register("a.b", lambda c, p: None, min_role=Role.VIEWER)
    with pytest.raises(ValueError, match="already registered"):
        table.register("a.b", lambda c, p: None, min_role=Role.VIEWER)
    with pytest.raises(ValueError, match="reserved"):
        table.register("rpc.discover", lambda c, p: None, min_role=Role.VIEWER)
    with pytest.raises(ValueError, match="MQTT-only"):
        table.register(
            "webrtc.x", lambda c, p: None, min_role=Role.VIEWER, transports={"mqtt", "datachannel"}
        )
    with pytest.raises(ValueError):
        table.register("c.d", lambda c, p: None, min_role=Role.VIEWER, transports={"carrier"})
    table.register("webrtc.y", lambda c, p: None, min_role=Role.VIEWER)
    table.register("c.e", lambda c, p: None, min_role=Role.ADMIN, transports={"datachannel"})
    transports = {m.name: "+".join(sorted(m.transports)) for m in table}
    assert transports == {"a.b": "datachannel+mqtt", "webrtc.y": "mqtt", "c.e": "datachannel"}
    assert "a.b" in table and "zz" not in table and len(table) == 3


# --- fuzzing: handle() never raises and only ever says valid JSON-RPC ------------------------

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
JSON_VALUES = st.recursive(
    JSON_SCALARS | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
FUZZ_HARNESS = Harness(role_for=lambda client: Role.ADMIN)
FUZZ_ORIGINS = st.sampled_from([Origin("fuzz", Transport.MQTT), DATACHANNEL])
METHOD_NAMES = [m.name for m in FUZZ_HARNESS.table] + ["no.such"]
PARAM_NAMES = ["session", "text", "n", "mode", "flag", "rate", "candidate", "name", "code"]
REQUESTS = st.fixed_dictionaries(
    {},
    optional={
        "jsonrpc": st.just("2.0") | JSON_SCALARS,
        "id": st.integers() | st.text(max_size=6) | JSON_VALUES,
        "method": st.sampled_from(METHOD_NAMES) | JSON_SCALARS,
        "params": st.dictionaries(st.sampled_from(PARAM_NAMES), JSON_VALUES) | JSON_VALUES,
        "result": JSON_SCALARS,
    },
)


def check(payload: bytes, origin: Origin) -> None:
    reply = asyncio.run(FUZZ_HARNESS.dispatcher.handle(payload, origin))
    if reply is not None:
        assert_valid_reply(reply)


@settings(deadline=None)
@given(st.binary(max_size=300), FUZZ_ORIGINS)
def test_fuzz_arbitrary_bytes(payload: bytes, origin: Origin) -> None:
    check(payload, origin)


@settings(deadline=None)
@given(JSON_VALUES, FUZZ_ORIGINS)
def test_fuzz_arbitrary_json(value: Any, origin: Origin) -> None:
    check(json.dumps(value).encode(), origin)


@settings(deadline=None)
@given(REQUESTS | st.lists(REQUESTS, max_size=4), FUZZ_ORIGINS)
def test_fuzz_request_shaped_json(value: Any, origin: Origin) -> None:
    payload = json.dumps(value).encode()
    check(payload, origin)
    check(payload[: len(payload) // 2], origin)  # cut short, it must still behave
