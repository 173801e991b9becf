"""agent/control: every method family through the real Dispatcher and build_method_table,
with a recording stand-in for control/api.py's Device: params errors name the field, roles
are enforced per method on MQTT and on the datachannel (which never serves webrtc.*), and
control/errors.py maps each refusal to its code (PROTOCOL.md sections 3, 4, 7, A2)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from agent.config import ConfigError
from agent.control import build_method_table
from agent.control.api import BadParamsError, Device, StreamChangeError
from agent.net.errors import BusyError, CameraUnavailableError, UnknownSessionError
from agent.rpc.dispatcher import Dispatcher
from agent.rpc.methods import Origin, Transport
from agent.rpc.roles import Role
from agent.rtc.sdp import NegotiationError

ROLES = {"viewer-1": Role.VIEWER, "ops-1": Role.OPERATOR, "admin-1": Role.ADMIN}
CLIENT_OF = {Role.VIEWER: "viewer-1", Role.OPERATOR: "ops-1", Role.ADMIN: "admin-1"}
SDP = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
SECRET = "/etc/edgecam/device.key: hunter2"


class FakeDevice:
    """Implements control/api.py's Device; records every call, raises `fail[method]`."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.fail: dict[str, Exception] = {}
        self.offers_allowed = True

    def _record(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))
        if name in self.fail:
            raise self.fail[name]

    def status(self) -> dict[str, Any]:
        self._record("status")
        return {"state": "online", "viewers": 0}

    def stream_info(self) -> dict[str, Any]:
        self._record("stream_info")
        return {"codec": "H264", "width": 1280, "height": 720}

    def request_keyframe(self) -> None:
        self._record("request_keyframe")

    async def set_stream(self, changes: dict[str, Any]) -> dict[str, Any]:
        self._record("set_stream", changes)
        return {"codec": "H264", **changes}

    async def snapshot(self, quality: int) -> tuple[bytes, int, int]:
        self._record("snapshot", quality)
        return b"\xff\xd8jpeg\xff\xd9", 640, 480

    def config_redacted(self) -> dict[str, Any]:
        self._record("config_redacted")
        return {"mqtt": {"password": "***"}}

    async def apply_config(self, patch: dict[str, Any]) -> dict[str, Any]:
        self._record("apply_config", patch)
        return {"applied": patch}

    def allow_offer(self, client: str) -> bool:
        self._record("allow_offer", client)
        return self.offers_allowed

    async def offer(
        self, client: str, session: str, sdp: str, ice_servers: list[dict[str, Any]] | None
    ) -> str:
        self._record("offer", client, session, sdp, ice_servers)
        return "v=0 answer"

    async def add_candidate(
        self, client: str, session: str, candidate: str | None, mid: str | None
    ) -> None:
        self._record("add_candidate", client, session, candidate, mid)

    async def close_session(self, client: str, session: str, reason: str) -> None:
        self._record("close_session", client, session, reason)

    def session_rows(self) -> list[dict[str, Any]]:
        self._record("session_rows")
        return [{"session": "s1", "client": "viewer-1"}]

    def subscribe_stats(self, client: str, session: str, interval: float | None) -> None:
        self._record("subscribe_stats", client, session, interval)

    async def camera_controls(self) -> dict[str, dict[str, Any]]:
        self._record("camera_controls")
        return {"brightness": {"type": "float", "min": -1.0, "max": 1.0, "value": 0.0}}

    async def set_camera_controls(self, values: dict[str, Any]) -> dict[str, Any]:
        self._record("set_camera_controls", values)
        return dict(values)


def _device_protocol_check(device: FakeDevice) -> Device:
    return device  # mypy: FakeDevice satisfies the Device Protocol


class Rig:
    def __init__(self) -> None:
        self.device = FakeDevice()
        self.dispatcher = Dispatcher(build_method_table(self.device), ROLES.get)

    async def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        client: str = "viewer-1",
        transport: Transport = Transport.MQTT,
        request_id: int | None = 1,
    ) -> dict[str, Any] | None:
        request: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params or {}}
        if request_id is not None:
            request["id"] = request_id
        session = "dc-1" if transport is Transport.DATACHANNEL else None
        origin = Origin(client, transport, session=session)
        reply = await self.dispatcher.handle(json.dumps(request).encode(), origin)
        if reply is None:
            return None
        decoded: dict[str, Any] = json.loads(reply)
        assert decoded["id"] == request_id
        return decoded

    async def error(self, method: str, params: dict[str, Any] | None = None, **kw: Any) -> Any:
        reply = await self.call(method, params, **kw)
        assert reply is not None and "error" in reply, reply
        return reply["error"]

    async def result(self, method: str, params: dict[str, Any] | None = None, **kw: Any) -> Any:
        reply = await self.call(method, params, **kw)
        assert reply is not None and "result" in reply, reply
        return reply["result"]

    @property
    def called(self) -> list[str]:
        return [name for name, _ in self.device.calls]


@pytest.fixture
def rig() -> Rig:
    return Rig()


# (method, valid params, minimum role, the device call it makes)
METHODS: list[tuple[str, dict[str, Any], Role, str]] = [
    ("webrtc.offer", {"session": "s1", "sdp": SDP}, Role.VIEWER, "offer"),
    (
        "webrtc.candidate",
        {"session": "s1", "candidate": "candidate:1 1 udp 1 h 9 typ host"},
        Role.VIEWER,
        "add_candidate",
    ),
    ("webrtc.close", {"session": "s1"}, Role.VIEWER, "close_session"),
    ("stream.get", {}, Role.VIEWER, "stream_info"),
    ("stream.keyframe", {}, Role.VIEWER, "request_keyframe"),
    ("stream.set", {"bitrate": 1_000_000}, Role.OPERATOR, "set_stream"),
    ("camera.snapshot", {"quality": 50}, Role.OPERATOR, "snapshot"),
    ("camera.controls", {}, Role.VIEWER, "camera_controls"),
    ("camera.get", {}, Role.VIEWER, "camera_controls"),
    ("camera.set", {"brightness": 0.5}, Role.OPERATOR, "set_camera_controls"),
    ("device.status", {}, Role.VIEWER, "status"),
    ("session.list", {}, Role.OPERATOR, "session_rows"),
    ("session.close", {"session": "s1"}, Role.VIEWER, "close_session"),
    ("session.subscribe_stats", {"session": "s1"}, Role.VIEWER, "subscribe_stats"),
    ("config.get", {}, Role.ADMIN, "config_redacted"),
    ("config.set", {"webrtc": {"max_viewers": 2}}, Role.ADMIN, "apply_config"),
]
METHOD_IDS = [m[0] for m in METHODS]
DATACHANNEL_METHODS = [m for m in METHODS if not m[0].startswith("webrtc.")]


def test_the_table_serves_exactly_these_methods(rig: Rig) -> None:
    table = build_method_table(rig.device)
    assert sorted(m.name for m in table) == sorted(METHOD_IDS)
    for name, _, role, _ in METHODS:
        method = table.get(name)
        assert method is not None and method.min_role is role, name


@pytest.mark.parametrize(("method", "params", "role", "device_call"), METHODS, ids=METHOD_IDS)
async def test_each_method_needs_its_role_over_mqtt(
    rig: Rig, method: str, params: dict[str, Any], role: Role, device_call: str
) -> None:
    for below in [r for r in Role if r < role]:
        error = await rig.error(method, params, client=CLIENT_OF[below])
        assert error["code"] == -32001, (below, error)
        assert role.name.lower() in error["message"]
    assert rig.device.calls == []
    await rig.result(method, params, client=CLIENT_OF[role])
    assert device_call in rig.called


@pytest.mark.parametrize(
    ("method", "params", "role", "device_call"),
    DATACHANNEL_METHODS,
    ids=[m[0] for m in DATACHANNEL_METHODS],
)
async def test_each_method_needs_its_role_over_the_datachannel(
    rig: Rig, method: str, params: dict[str, Any], role: Role, device_call: str
) -> None:
    dc = Transport.DATACHANNEL
    for below in [r for r in Role if r < role]:
        error = await rig.error(method, params, client=CLIENT_OF[below], transport=dc)
        assert error["code"] == -32001, (below, error)
    assert rig.device.calls == []
    await rig.result(method, params, client=CLIENT_OF[role], transport=dc)
    assert device_call in rig.called


@pytest.mark.parametrize("method", ["webrtc.offer", "webrtc.candidate", "webrtc.close"])
async def test_webrtc_methods_are_not_served_on_the_datachannel(rig: Rig, method: str) -> None:
    params = next(p for name, p, _, _ in METHODS if name == method)
    error = await rig.error(method, params, client="admin-1", transport=Transport.DATACHANNEL)
    assert error["code"] == -32601
    assert "mqtt" in error["message"]
    assert rig.device.calls == []


@pytest.mark.parametrize(("method", "params", "role", "device_call"), METHODS, ids=METHOD_IDS)
async def test_a_client_with_no_role_may_call_nothing(
    rig: Rig, method: str, params: dict[str, Any], role: Role, device_call: str
) -> None:
    error = await rig.error(method, params, client="stranger")
    assert error["code"] == -32001
    assert rig.device.calls == []


@pytest.mark.parametrize(
    ("method", "params", "field"),
    [
        ("webrtc.offer", {"session": "s1"}, "params.sdp"),
        ("webrtc.offer", {"session": "s 1", "sdp": SDP}, "params.session"),
        (
            "webrtc.offer",
            {"session": "s1", "sdp": SDP, "ice_servers": "stun:x"},
            "params.ice_servers",
        ),
        ("webrtc.candidate", {"session": "s1"}, "params.candidate"),
        ("webrtc.candidate", {"session": "s1", "candidate": "x" * 1025}, "params.candidate"),
        (
            "webrtc.candidate",
            {"session": "s1", "candidate": None, "sdpMLineIndex": -1},
            "params.sdpMLineIndex",
        ),
        ("webrtc.close", {}, "params.session"),
        ("stream.get", {"verbose": True}, "params.verbose"),
        ("stream.set", {"bitrate": 10}, "params.bitrate"),
        ("stream.set", {"width": 641}, "params.width"),
        ("stream.set", {"height": 479}, "params.height"),
        ("stream.set", {"framerate": "fast"}, "params.framerate"),
        ("camera.snapshot", {"quality": 0}, "params.quality"),
        ("camera.snapshot", {"quality": 101}, "params.quality"),
        ("session.close", {"session": 7}, "params.session"),
        ("session.close", {"session": "s1", "client": "c" * 257}, "params.client"),
        ("config.get", {"section": "mqtt"}, "params.section"),
    ],
)
async def test_bad_params_are_refused_naming_the_field(
    rig: Rig, method: str, params: dict[str, Any], field: str
) -> None:
    error = await rig.error(method, params, client="admin-1")
    assert error["code"] == -32602
    assert error["message"].startswith(field), error
    assert rig.device.calls == []


# A refusal from the device, and the code it becomes, whichever method raised it.
def _busy() -> BusyError:
    return BusyError("viewer limit reached (8)", "viewer_limit")


REFUSALS: list[tuple[str, str, dict[str, Any], Exception, int]] = [
    (
        "webrtc.offer",
        "offer",
        {"session": "s1", "sdp": SDP},
        NegotiationError("offer has no a=fingerprint"),
        -32004,
    ),
    ("webrtc.offer", "offer", {"session": "s1", "sdp": SDP}, _busy(), -32002),
    (
        "webrtc.offer",
        "offer",
        {"session": "s1", "sdp": SDP},
        CameraUnavailableError("no keyframe within 5 s"),
        -32006,
    ),
    (
        "webrtc.offer",
        "offer",
        {"session": "s1", "sdp": SDP},
        BadParamsError("params.ice_servers: ice_servers[0].urls: expected a list"),
        -32602,
    ),
    (
        "webrtc.offer",
        "offer",
        {"session": "s1", "sdp": SDP},
        UnknownSessionError("session s1 ended while answering"),
        -32003,
    ),
    (
        "webrtc.close",
        "close_session",
        {"session": "s1"},
        UnknownSessionError("no session s1"),
        -32003,
    ),
    (
        "webrtc.candidate",
        "add_candidate",
        {"session": "s1", "candidate": "candidate:x"},
        UnknownSessionError("no session s1"),
        -32003,
    ),
    (
        "session.close",
        "close_session",
        {"session": "s1"},
        UnknownSessionError("no session s1"),
        -32003,
    ),
    (
        "stream.set",
        "set_stream",
        {"width": 640},
        StreamChangeError("camera testsrc: opening took over 10 s"),
        -32006,
    ),
    ("camera.snapshot", "snapshot", {}, StreamChangeError("no keyframe cached yet"), -32006),
    (
        "config.set",
        "apply_config",
        {"camera": {"width": 3}},
        ConfigError(["camera.width: must be even"]),
        -32602,
    ),
    (
        "config.set",
        "apply_config",
        {"camera": {"width": 640}},
        StreamChangeError("camera testsrc: opening took over 10 s"),
        -32006,
    ),
]


@pytest.mark.parametrize(
    ("method", "device_call", "params", "refusal", "code"),
    REFUSALS,
    ids=[f"{m}-{type(e).__name__}" for m, _, _, e, _ in REFUSALS],
)
async def test_each_refusal_maps_to_its_code(
    rig: Rig, method: str, device_call: str, params: dict[str, Any], refusal: Exception, code: int
) -> None:
    rig.device.fail[device_call] = refusal
    error = await rig.error(method, params, client="admin-1")
    assert error["code"] == code
    assert error["message"] == str(refusal)
    assert error.get("data") == getattr(refusal, "data", None)


async def test_busy_carries_its_data(rig: Rig) -> None:
    rig.device.fail["offer"] = _busy()
    error = await rig.error("webrtc.offer", {"session": "s1", "sdp": SDP})
    assert error == {
        "code": -32002,
        "message": "viewer limit reached (8)",
        "data": {"reason": "viewer_limit"},
    }


@pytest.mark.parametrize(("method", "params", "role", "device_call"), METHODS, ids=METHOD_IDS)
async def test_an_unexpected_exception_is_internal_and_leaks_nothing(
    rig: Rig, method: str, params: dict[str, Any], role: Role, device_call: str
) -> None:
    rig.device.fail[device_call] = RuntimeError(SECRET)
    error = await rig.error(method, params, client="admin-1")
    assert error["code"] == -32603
    assert "hunter2" not in json.dumps(error)


async def test_a_value_error_from_a_candidate_names_the_field(rig: Rig) -> None:
    rig.device.fail["add_candidate"] = ValueError("not a candidate line")
    error = await rig.error("webrtc.candidate", {"session": "s1", "candidate": "garbage"})
    assert error == {"code": -32602, "message": "params.candidate: not a candidate line"}


@pytest.mark.parametrize("end", ["", None])
async def test_an_empty_or_null_candidate_means_end_of_candidates(
    rig: Rig, end: str | None
) -> None:
    params = {"session": "s1", "candidate": end, "sdpMid": "0"}
    assert await rig.result("webrtc.candidate", params) == {}
    assert rig.device.calls == [("add_candidate", ("viewer-1", "s1", None, "0"))]


async def test_a_candidate_notification_is_served_and_not_answered(rig: Rig) -> None:
    params = {"session": "s1", "candidate": "candidate:1 1 udp 1 h 9 typ host"}
    assert await rig.call("webrtc.candidate", params, request_id=None) is None
    assert rig.device.calls == [
        ("add_candidate", ("viewer-1", "s1", "candidate:1 1 udp 1 h 9 typ host", None))
    ]


async def test_offer_passes_the_caller_and_returns_the_answer(rig: Rig) -> None:
    result = await rig.result("webrtc.offer", {"session": "s1", "sdp": SDP})
    assert result == {"session": "s1", "sdp": "v=0 answer"}
    assert rig.device.calls == [
        ("allow_offer", ("viewer-1",)),
        ("offer", ("viewer-1", "s1", SDP, None)),
    ]


async def test_an_offer_over_the_clients_offer_limit_is_rate_limited(rig: Rig) -> None:
    rig.device.offers_allowed = False
    error = await rig.error("webrtc.offer", {"session": "s1", "sdp": SDP})
    assert error["code"] == -32005
    assert rig.called == ["allow_offer"]


async def test_per_offer_ice_servers_need_the_operator_role(rig: Rig) -> None:
    servers = [{"urls": ["stun:stun.example:3478"]}]
    params = {"session": "s1", "sdp": SDP, "ice_servers": servers}
    error = await rig.error("webrtc.offer", params, client="viewer-1")
    assert error["code"] == -32001 and "params.ice_servers" in error["message"]
    assert "offer" not in rig.called
    await rig.result("webrtc.offer", params, client="ops-1")
    assert rig.device.calls[-1] == ("offer", ("ops-1", "s1", SDP, servers))


async def test_session_close_of_another_client_needs_the_operator_role(rig: Rig) -> None:
    error = await rig.error("session.close", {"session": "s1", "client": "ops-1"})
    assert error["code"] == -32001
    assert rig.device.calls == []
    # Its own session, named or not, a viewer may close.
    await rig.result("session.close", {"session": "s1", "client": "viewer-1"})
    await rig.result("session.close", {"session": "s2"})
    await rig.result("session.close", {"session": "s3", "client": "viewer-1"}, client="ops-1")
    assert [args[:2] for _, args in rig.device.calls] == [
        ("viewer-1", "s1"),
        ("viewer-1", "s2"),
        ("viewer-1", "s3"),
    ]
    assert rig.device.calls[-1][1][2] == "closed by ops-1"


async def test_webrtc_close_closes_only_the_callers_session(rig: Rig) -> None:
    await rig.result("webrtc.close", {"session": "s1"}, client="ops-1")
    assert rig.device.calls == [("close_session", ("ops-1", "s1", "closed by client"))]


async def test_stream_set_passes_only_the_given_changes(rig: Rig) -> None:
    params = {"bitrate": 1_000_000, "width": 640, "height": 480}
    result = await rig.result("stream.set", params, client="ops-1")
    assert rig.device.calls == [("set_stream", (params,))]
    assert result == {"codec": "H264", **params}


async def test_snapshot_is_base64_jpeg_with_a_default_quality(rig: Rig) -> None:
    result = await rig.result("camera.snapshot", {}, client="ops-1")
    assert result == {
        "mime": "image/jpeg",
        "width": 640,
        "height": 480,
        "data": base64.b64encode(b"\xff\xd8jpeg\xff\xd9").decode(),
    }
    assert rig.device.calls == [("snapshot", (85,))]


async def test_config_set_hands_the_whole_patch_to_the_device(rig: Rig) -> None:
    patch = {"webrtc": {"max_viewers": 2}, "logging": {"level": "debug"}}
    assert await rig.result("config.set", patch, client="admin-1") == {"applied": patch}
    assert rig.device.calls == [("apply_config", (patch,))]
    assert await rig.result("config.get", client="admin-1") == {"mqtt": {"password": "***"}}


async def test_read_only_methods_return_what_the_device_says(rig: Rig) -> None:
    assert await rig.result("device.status") == {"state": "online", "viewers": 0}
    assert await rig.result("stream.get") == {"codec": "H264", "width": 1280, "height": 720}
    assert await rig.result("stream.keyframe") == {}
    assert await rig.result("session.list", client="ops-1") == [
        {"session": "s1", "client": "viewer-1"}
    ]
    assert rig.called == ["status", "stream_info", "request_keyframe", "session_rows"]
