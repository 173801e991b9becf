"""device.status, session.list / session.close: who is watching."""

from __future__ import annotations

from typing import Any

from agent.control.api import Device
from agent.control.errors import mapped
from agent.rpc.errors import RpcError
from agent.rpc.methods import CallContext, MethodTable
from agent.rpc.params import NO_PARAMS, SESSION_ID, Kind, Param, ParamSpec
from agent.rpc.roles import Role

CLOSE_PARAMS = ParamSpec({"session": SESSION_ID, "client": Param(Kind.STR, max_length=256)})
# session.stats at most 10 times a second, at least once a minute.
STATS_PARAMS = ParamSpec(
    {"session": SESSION_ID, "interval": Param(Kind.NUMBER, minimum=0.1, maximum=60.0)}
)


def register(table: MethodTable, device: Device) -> None:
    def status(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
        return device.status()

    def session_list(ctx: CallContext, params: dict[str, Any]) -> list[dict[str, Any]]:
        return device.session_rows()

    async def session_close(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
        client = params.get("client") or ctx.client_id
        # A viewer may end its own sessions; anyone else's needs the operator role.
        if client != ctx.client_id and ctx.role < Role.OPERATOR:
            raise RpcError.unauthorized("closing another client's session needs role operator")
        await device.close_session(client, params["session"], f"closed by {ctx.client_id}")
        return {}

    def subscribe_stats(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
        # Scoped like every session id: only the caller's own session.
        device.subscribe_stats(ctx.client_id, params["session"], params.get("interval"))
        return {}

    table.register("device.status", status, min_role=Role.VIEWER, params=NO_PARAMS)
    table.register("session.list", session_list, min_role=Role.OPERATOR, params=NO_PARAMS)
    table.register(
        "session.close", mapped(session_close), min_role=Role.VIEWER, params=CLOSE_PARAMS
    )
    table.register(
        "session.subscribe_stats",
        mapped(subscribe_stats),
        min_role=Role.VIEWER,
        params=STATS_PARAMS,
    )
