"""camera.snapshot: a JPEG of what the camera sees now."""

from __future__ import annotations

import base64
from typing import Any

from agent.control.api import Device
from agent.control.errors import mapped
from agent.rpc.methods import CallContext, MethodTable
from agent.rpc.params import Kind, Param, ParamSpec
from agent.rpc.roles import Role

SNAPSHOT_PARAMS = ParamSpec({"quality": Param(Kind.INT, minimum=1, maximum=100)})
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

    table.register(
        "camera.snapshot", mapped(snapshot), min_role=Role.OPERATOR, params=SNAPSHOT_PARAMS
    )
