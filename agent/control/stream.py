"""stream.get / stream.keyframe / stream.set: the encoded stream every viewer shares."""

from __future__ import annotations

from typing import Any

from agent.control.api import Device
from agent.control.errors import mapped
from agent.rpc.errors import RpcError
from agent.rpc.methods import CallContext, MethodTable
from agent.rpc.params import NO_PARAMS, Kind, Param, ParamSpec
from agent.rpc.roles import Role

STREAM_SET_PARAMS = ParamSpec(
    {
        "bitrate": Param(Kind.INT, minimum=50_000, maximum=50_000_000),
        "framerate": Param(Kind.NUMBER, minimum=1, maximum=120),
        "width": Param(Kind.INT, minimum=16, maximum=4096),
        "height": Param(Kind.INT, minimum=16, maximum=4096),
    }
)


def register(table: MethodTable, device: Device) -> None:
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
        return await device.set_stream(changes)

    table.register("stream.get", stream_get, min_role=Role.VIEWER, params=NO_PARAMS)
    table.register("stream.keyframe", keyframe, min_role=Role.VIEWER, params=NO_PARAMS)
    table.register(
        "stream.set", mapped(stream_set), min_role=Role.OPERATOR, params=STREAM_SET_PARAMS
    )
