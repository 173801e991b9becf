"""`edgecam ctl`, run as the command it is, against mosquitto (TLS client certificates, the
production ACL, client ids bound to CNs), three running agents cam-1..cam-3 and a stopped
cam-9."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import av

from tests.client.fleet_rig import OPERATOR, VIEWER, FleetRig, fleet_broker, fleet_rig
from tests.infra.pki import Pki

__all__ = ["fleet_broker", "fleet_rig"]  # fixtures, by name
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Run:
    code: int
    out: str
    err: str


async def ctl(rig: FleetRig, cn: str, *args: str, cert: tuple[str, str] | None = None) -> Run:
    credentials = rig.credentials(cn)
    if cert is not None:
        credentials["cert"], credentials["key"] = cert
    env = {
        **os.environ,
        "EDGECAM_BROKER": credentials["broker"],
        "EDGECAM_CA": credentials["ca"],
        "EDGECAM_CERT": credentials["cert"],
        "EDGECAM_KEY": credentials["key"],
        "EDGECAM_CLIENT_CONFIG": str(rig.directory / "no-client.toml"),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agent.tools.cli",
        "ctl",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


async def test_devices_lists_the_three_and_the_stopped_one_offline(fleet_rig: FleetRig) -> None:
    run = await ctl(fleet_rig, OPERATOR, "devices")
    assert run.code == 0, run.err
    lines = run.out.splitlines()
    assert lines[0].split()[:3] == ["DEVICE", "STATE", "VERSION"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert sorted(rows) == ["cam-1", "cam-2", "cam-3", "cam-9"]
    assert all(rows[d][1] == "online" and "160x120@10" in rows[d][4] for d in ("cam-1", "cam-2"))
    assert rows["cam-9"][1] == "offline"

    as_json = await ctl(fleet_rig, OPERATOR, "devices", "--json")
    states = {json.loads(line)["id"]: json.loads(line)["state"] for line in as_json.out.split()}
    assert states == {"cam-1": "online", "cam-2": "online", "cam-3": "online", "cam-9": "offline"}


async def test_call_glob_gives_one_json_result_per_online_device(fleet_rig: FleetRig) -> None:
    run = await ctl(fleet_rig, OPERATOR, "call", "cam-*", "device.status", "--json")
    assert run.code == 0, run.err
    results = [json.loads(line) for line in run.out.splitlines()]
    assert [r["device"] for r in results] == ["cam-1", "cam-2", "cam-3"]
    assert all(r["ok"] and r["result"]["device"] == r["device"] for r in results)
    assert "3 device(s): 3 ok, 0 failed (1 offline not called)" in run.err


async def test_stream_set_applies_for_an_operator_and_is_refused_for_a_viewer(
    fleet_rig: FleetRig,
) -> None:
    run = await ctl(fleet_rig, OPERATOR, "call", "cam-1", "stream.set", "bitrate=800000")
    assert run.code == 0, run.err
    assert run.out.splitlines()[0].startswith("cam-1  ok  ")
    assert '"bitrate":800000' in run.out
    assert fleet_rig.agents["cam-1"].stream_info()["bitrate"] == 800000

    refused = await ctl(fleet_rig, VIEWER, "call", "cam-1", "stream.set", "bitrate=400000")
    assert refused.code == 1
    assert "cam-1  error -32001:" in refused.out
    assert "1 device(s): 0 ok, 1 failed" in refused.out
    assert fleet_rig.agents["cam-1"].stream_info()["bitrate"] == 800000


async def test_snapshot_writes_a_decodable_jpeg_per_device(
    fleet_rig: FleetRig, tmp_path: Path
) -> None:
    out = tmp_path / "shots"
    run = await ctl(fleet_rig, OPERATOR, "snapshot", "all", "-o", str(out))
    assert run.code == 0, run.err
    assert sorted(p.name for p in out.iterdir()) == ["cam-1.jpg", "cam-2.jpg", "cam-3.jpg"]
    for path in out.iterdir():
        with av.open(io.BytesIO(path.read_bytes()), format="image2pipe") as container:
            codec = container.streams.video[0].codec_context.name
            frame = next(container.decode(video=0))
        assert path.read_bytes()[:2] == b"\xff\xd8"
        assert codec == "mjpeg"
        assert (frame.width, frame.height) == (160, 120)


async def test_events_and_telemetry_print_one_line_per_message(fleet_rig: FleetRig) -> None:
    credentials = fleet_rig.credentials(OPERATOR)
    env = {
        **os.environ,
        "EDGECAM_BROKER": credentials["broker"],
        "EDGECAM_CA": credentials["ca"],
        "EDGECAM_CERT": credentials["cert"],
        "EDGECAM_KEY": credentials["key"],
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agent.tools.cli", "ctl", "telemetry", "cam-3", "--json",
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
    finally:
        proc.terminate()
        await proc.wait()
    sample = json.loads(line)
    assert sample["device"] == "cam-3" and sample["kind"] == "telemetry"
    assert "bitrate_out" in sample


async def test_a_certificate_the_broker_does_not_trust_is_one_line(
    fleet_rig: FleetRig, tmp_path: Path
) -> None:
    stranger = Pki(tmp_path / "other-ca", ca_name="not the fleet's CA")
    cert, key = stranger.issue(OPERATOR, server_names=(), client=True)
    run = await ctl(fleet_rig, OPERATOR, "devices", cert=(str(cert), str(key)))
    assert run.code == 1
    assert run.out == ""
    assert len(run.err.splitlines()) == 1, run.err
    assert run.err.startswith("error: broker mqtts://localhost:")
    assert "refused the client certificate" in run.err


async def test_an_unknown_device_is_one_line_and_a_failure(fleet_rig: FleetRig) -> None:
    run = await ctl(fleet_rig, OPERATOR, "call", "cam-404", "device.status")
    assert run.code == 1
    assert run.out.splitlines()[0] == (
        "cam-404  error: cam-404: unknown device (no status on the broker)"
    )
    offline = await ctl(fleet_rig, OPERATOR, "call", "cam-9", "device.status")
    assert offline.code == 1 and "cam-9: device offline" in offline.out
    none = await ctl(fleet_rig, OPERATOR, "call", "lab-*", "device.status")
    assert none.code == 1 and none.err == "error: no online device matches 'lab-*'\n"
