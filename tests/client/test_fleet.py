"""`agent.client.Fleet` against a real mosquitto (TLS client certificates, CN-bound client ids,
the production ACL) and three running agents plus one stopped device."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiomqtt
import pytest

from agent.client import (
    CallTimeout,
    ConnectError,
    DeviceOffline,
    Fleet,
    NotAuthorised,
    RpcCallError,
    SyncFleet,
    UnknownDevice,
)
from tests.client.fleet_rig import OPERATOR, VIEWER, FleetRig


async def test_devices_come_from_retained_status_with_the_stopped_one_offline(
    fleet_rig: FleetRig,
) -> None:
    async with fleet_rig.fleet() as fleet:
        assert fleet.client_id == OPERATOR  # the certificate's CN
        devices = {d.id: d for d in await fleet.devices()}
    assert sorted(devices) == ["cam-1", "cam-2", "cam-3", "cam-9"]
    for name in ("cam-1", "cam-2", "cam-3"):
        assert devices[name].online
        assert devices[name].stream is not None and devices[name].stream["width"] == 160
        assert devices[name].version
    assert not devices["cam-9"].online and devices["cam-9"].state == "offline"


async def test_call_returns_the_result_and_stream_set_applies(fleet_rig: FleetRig) -> None:
    async with fleet_rig.fleet() as fleet:
        status = await fleet.call("cam-2", "device.status")
        assert status["device"] == "cam-2" and status["state"] == "online"
        applied = await fleet.call("cam-2", "stream.set", bitrate=300_000)
        assert applied["bitrate"] == 300_000
    assert fleet_rig.agents["cam-2"].stream_info()["bitrate"] == 300_000
    assert fleet_rig.agents["cam-1"].stream_info()["bitrate"] == 200_000


async def test_a_viewer_gets_the_devices_unauthorized_error(fleet_rig: FleetRig) -> None:
    async with fleet_rig.fleet(VIEWER) as fleet:
        with pytest.raises(RpcCallError) as error:
            await fleet.call("cam-1", "stream.set", {"bitrate": 300_000})
    assert error.value.code == -32001
    assert "-32001" in str(error.value) and "cam-1" in str(error.value)
    assert fleet_rig.agents["cam-1"].stream_info()["bitrate"] == 200_000


async def test_bad_params_come_back_as_the_devices_error(fleet_rig: FleetRig) -> None:
    async with fleet_rig.fleet() as fleet:
        with pytest.raises(RpcCallError) as error:
            await fleet.call("cam-1", "stream.set", bitrate="fast")
    assert error.value.code == -32602


async def test_unknown_and_offline_devices_fail_before_anything_is_sent(
    fleet_rig: FleetRig,
) -> None:
    async with fleet_rig.fleet() as fleet:
        with pytest.raises(UnknownDevice, match="cam-404: unknown device"):
            await fleet.call("cam-404", "device.status")
        with pytest.raises(DeviceOffline, match="cam-9: device offline"):
            await fleet.call("cam-9", "device.status")


async def silent_device(rig: FleetRig, name: str) -> aiomqtt.Client:
    """A device that says it is online (retained status, its own certificate) and never
    answers a request."""
    client = aiomqtt.Client(
        "127.0.0.1",
        rig.broker.tls_port,
        identifier=name,
        tls_context=rig.broker.client_tls_context(name),
    )
    await client.__aenter__()
    status = {"state": "online", "device": name, "version": "0", "viewers": 0}
    await client.publish(f"edgecam/{name}/status", json.dumps(status), qos=1, retain=True)
    return client


async def test_a_device_that_does_not_answer_times_out(fleet_rig: FleetRig) -> None:
    ghost = await silent_device(fleet_rig, "cam-ghost")
    try:
        async with fleet_rig.fleet() as fleet:
            with pytest.raises(CallTimeout, match=r"cam-ghost: device.status: no answer"):
                await fleet.call("cam-ghost", "device.status", timeout=0.5)
            # The connection still serves other calls.
            assert (await fleet.call("cam-1", "device.status"))["device"] == "cam-1"
            results = await fleet.call_many("cam-*", "device.status", timeout=1.0)
    finally:
        await ghost.__aexit__(None, None, None)
    by_device = {r.device: r for r in results}
    assert sorted(by_device) == ["cam-1", "cam-2", "cam-3", "cam-ghost"]
    assert isinstance(by_device["cam-ghost"].error, CallTimeout)
    assert all(by_device[d].ok for d in ("cam-1", "cam-2", "cam-3"))


async def test_call_many_fans_out_to_online_devices_within_the_bound(
    fleet_rig: FleetRig,
) -> None:
    async with fleet_rig.fleet() as fleet:
        real_call = fleet.call
        in_flight = 0
        most = 0

        async def counting_call(*args: Any, **kwargs: Any) -> Any:
            nonlocal in_flight, most
            in_flight += 1
            most = max(most, in_flight)
            try:
                return await real_call(*args, **kwargs)
            finally:
                in_flight -= 1

        fleet.call = counting_call  # type: ignore[method-assign]
        results = await fleet.call_many("cam-*", "device.status", concurrency=2)
        bounded, most = most, 0
        everyone = await fleet.call_many("all", "stream.get")
    assert [r.device for r in results] == ["cam-1", "cam-2", "cam-3"]  # cam-9 is offline
    assert [r.result["device"] for r in results] == ["cam-1", "cam-2", "cam-3"]
    assert bounded == 2
    assert most == 3  # the default bound lets all three go at once
    assert [r.device for r in everyone] == ["cam-1", "cam-2", "cam-3"]
    assert all(r.ok and r.result["codec"] == "H264" for r in everyone)


async def test_call_many_reports_each_devices_error(fleet_rig: FleetRig) -> None:
    async with fleet_rig.fleet(VIEWER) as fleet:
        results = await fleet.call_many(["cam-1", "cam-9", "nope"], "stream.set", {"bitrate": 1})
    by_device = {r.device: r for r in results}
    assert isinstance(by_device["cam-1"].error, RpcCallError)
    assert by_device["cam-1"].error.code == -32001
    assert isinstance(by_device["cam-9"].error, DeviceOffline)
    assert isinstance(by_device["nope"].error, UnknownDevice)
    assert by_device["cam-1"].to_json()["error"]["code"] == -32001


async def test_events_and_telemetry_follow_the_matching_devices(fleet_rig: FleetRig) -> None:
    async with fleet_rig.fleet() as fleet:
        async with fleet.following("events", "cam-3") as events:
            await fleet.call("cam-1", "stream.set", bitrate=310_000)
            await fleet.call("cam-3", "stream.set", bitrate=320_000)
            event = await asyncio.wait_for(anext(events), 10)
        assert event.device == "cam-3" and event.body["event"] == "stream.changed"
        assert event.body["stream"]["bitrate"] == 320_000
        stream = fleet.telemetry("cam-2")
        sample = await asyncio.wait_for(anext(stream), 10)
        await stream.aclose()  # type: ignore[attr-defined]
    assert sample.device == "cam-2" and "bitrate_out" in sample.body


async def test_the_sync_wrapper_calls_from_a_plain_thread(fleet_rig: FleetRig) -> None:
    credentials = fleet_rig.credentials(OPERATOR)

    def script() -> tuple[list[str], Any, list[bool]]:
        with SyncFleet(**credentials) as fleet:
            ids = [d.id for d in fleet.devices() if d.online]
            keyframe = fleet.call("cam-1", "stream.keyframe")
            many = [r.ok for r in fleet.call_many("cam-*", "device.status")]
        return ids, keyframe, many

    ids, keyframe, many = await asyncio.to_thread(script)
    assert ids == ["cam-1", "cam-2", "cam-3"]
    assert keyframe == {}
    assert many == [True, True, True]


async def test_a_certificate_from_another_ca_is_refused_in_one_line(
    fleet_rig: FleetRig, tmp_path: Any
) -> None:
    from tests.infra.pki import Pki

    stranger = Pki(tmp_path / "other-ca", ca_name="not the fleet's CA")
    cert, key = stranger.issue(OPERATOR, server_names=(), client=True)
    credentials = {**fleet_rig.credentials(OPERATOR), "cert": str(cert), "key": str(key)}
    with pytest.raises(ConnectError) as error:
        async with Fleet(**credentials) as fleet:
            await fleet.devices()
    message = str(error.value)
    assert "\n" not in message
    assert "refused the client certificate" in message, message


async def test_a_client_id_that_is_not_the_cn_is_not_authorised(fleet_rig: FleetRig) -> None:
    credentials = {**fleet_rig.credentials(OPERATOR), "client_id": "someone-else"}
    async with Fleet(**credentials) as fleet:
        with pytest.raises(NotAuthorised, match="not authorised to publish"):
            await fleet.call("cam-1", "device.status", timeout=5.0)


async def test_plain_mqtt_is_refused_unless_allowed() -> None:
    with pytest.raises(ConnectError, match="--allow-insecure"):
        async with Fleet(broker="mqtt://127.0.0.1:1", client_id="x"):
            pass


async def test_the_fleet_socket_sends_small_requests_at_once(fleet_rig: FleetRig) -> None:
    # Without TCP_NODELAY each request after the first waits ~40 ms for the broker's
    # delayed ACK (Nagle): the round trip the bench measures.
    import socket

    async with fleet_rig.fleet() as fleet:
        assert fleet._client is not None
        sock = fleet._client._client.socket()
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
