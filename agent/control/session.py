"""session.list / session.close, and config.get / config.set."""

from __future__ import annotations

from typing import Any

from agent.control.api import Device, StreamChangeError
from agent.sessions import UnknownSessionError
from agent.signaling.params import NO_PARAMS, SESSION_ID, Kind, Param, ParamSpec
from agent.signaling.rpc import CallContext, MethodTable, Role, RpcError

CLOSE_PARAMS = ParamSpec({"session": SESSION_ID, "client": Param(Kind.STR, max_length=256)})


def register(table: MethodTable, device: Device) -> None:
    def session_list(ctx: CallContext, params: dict[str, Any]) -> list[dict[str, Any]]:
        return device.sessions.rows()

    async def session_close(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
        client = params.get("client") or ctx.client_id
        # A viewer may end its own sessions; anyone else's needs the operator role.
        if client != ctx.client_id and ctx.role < Role.OPERATOR:
            raise RpcError.unauthorized("closing another client's session needs role operator")
        try:
            await device.sessions.close(client, params["session"], f"closed by {ctx.client_id}")
        except UnknownSessionError as exc:
            raise RpcError.unknown_session(str(exc)) from None
        return {}

    def config_get(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
        return device.config_redacted()

    async def config_set(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
        try:
            return await device.apply_config(params)
        except ValueError as exc:
            raise RpcError.invalid_params(str(exc)) from None
        except StreamChangeError as exc:
            raise RpcError.camera_unavailable(str(exc)) from None

    table.register("session.list", session_list, min_role=Role.OPERATOR, params=NO_PARAMS)
    table.register("session.close", session_close, min_role=Role.VIEWER, params=CLOSE_PARAMS)
    table.register("config.get", config_get, min_role=Role.ADMIN, params=NO_PARAMS)
    table.register(
        "config.set", config_set, min_role=Role.ADMIN, params=ParamSpec({}, allow_extra=True)
    )
