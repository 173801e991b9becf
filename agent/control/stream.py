"""device.status, stream.get / stream.keyframe / stream.set, camera.snapshot."""

from __future__ import annotations

import base64
from typing import Any

from agent.control.api import Device, StreamChangeError
from agent.signaling.params import NO_PARAMS, Kind, Param, ParamSpec
from agent.signaling.rpc import CallContext, MethodTable, Role, RpcError

STREAM_SET_PARAMS = ParamSpec(
    {
        "bitrate": Param(Kind.INT, minimum=50_000, maximum=50_000_000),
        "framerate": Param(Kind.NUMBER, minimum=1, maximum=120),
        "width": Param(Kind.INT, minimum=16, maximum=4096),
        "height": Param(Kind.INT, minimum=16, maximum=4096),
    }
)
SNAPSHOT_PARAMS = ParamSpec({"quality": Param(Kind.INT, minimum=1, maximum=100)})


def register(table: MethodTable, device: Device) -> None:
    def status(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
        return device.status()

    def stream_get(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
        return device.stream_info()

    def keyframe(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
        device.request_keyframe()
        return {}

    async def stream_set(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
        changes = {k: v for k, v in params.items() if v is not None}
        for side in ("width", "height"):
            if side in changes and changes[side] % 2:
                raise RpcError.invalid_params(f"params.{side}: must be even (H.264 4:2:0)")
        try:
            return await device.set_stream(changes)
        except StreamChangeError as exc:
            raise RpcError.camera_unavailable(str(exc)) from None

    async def snapshot(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
        try:
            jpeg, width, height = await device.snapshot(int(params.get("quality") or 85))
        except StreamChangeError as exc:
            raise RpcError.camera_unavailable(str(exc)) from None
        return {
            "mime": "image/jpeg",
            "width": width,
            "height": height,
            "data": base64.b64encode(jpeg).decode("ascii"),
        }

    table.register("device.status", status, min_role=Role.VIEWER, params=NO_PARAMS)
    table.register("stream.get", stream_get, min_role=Role.VIEWER, params=NO_PARAMS)
    table.register("stream.keyframe", keyframe, min_role=Role.VIEWER, params=NO_PARAMS)
    table.register("stream.set", stream_set, min_role=Role.OPERATOR, params=STREAM_SET_PARAMS)
    table.register("camera.snapshot", snapshot, min_role=Role.OPERATOR, params=SNAPSHOT_PARAMS)
