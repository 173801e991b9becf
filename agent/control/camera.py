"""camera.snapshot (a JPEG of what the camera sees now) and the picture controls:
camera.controls (what this camera has, with ranges), camera.get, camera.set."""

from __future__ import annotations

import base64
from typing import Any

from agent.control.api import Device
from agent.control.errors import mapped
from agent.rpc.errors import RpcError
from agent.rpc.methods import CallContext, MethodTable
from agent.rpc.params import NO_PARAMS, Kind, Param, ParamSpec
from agent.rpc.roles import Role

SNAPSHOT_PARAMS = ParamSpec({"quality": Param(Kind.INT, minimum=1, maximum=100)})
# Names and values are checked against what this camera offers (camera.controls).
CONTROL_PARAMS = ParamSpec({}, allow_extra=True)
DEFAULT_QUALITY = 85


def register(table: MethodTable, device: Device) -> None:
    async def snapshot(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
        jpeg, width, height = await device.snapshot(int(params.get("quality") or DEFAULT_QUALITY))
        return {
            "mime": "image/jpeg",
            "width": width,
            "height": height,
            "data": base64.b64encode(jpeg).decode("ascii"),
        }

    async def controls(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
        return await device.camera_controls()

    async def get(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
        return {name: info["value"] for name, info in (await device.camera_controls()).items()}

    async def set_(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
        if not params:
            raise RpcError.invalid_params("params: name at least one control to set")
        return await device.set_camera_controls(params)

    table.register(
        "camera.snapshot", mapped(snapshot), min_role=Role.OPERATOR, params=SNAPSHOT_PARAMS
    )
    table.register("camera.controls", mapped(controls), min_role=Role.VIEWER, params=NO_PARAMS)
    table.register("camera.get", mapped(get), min_role=Role.VIEWER, params=NO_PARAMS)
    table.register("camera.set", mapped(set_), min_role=Role.OPERATOR, params=CONTROL_PARAMS)
