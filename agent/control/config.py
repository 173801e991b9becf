"""config.get / config.set: the effective configuration, secrets redacted."""

from __future__ import annotations

from typing import Any

from agent.control.api import Device
from agent.control.errors import mapped
from agent.rpc.methods import CallContext, MethodTable
from agent.rpc.params import NO_PARAMS, ParamSpec
from agent.rpc.roles import Role


def register(table: MethodTable, device: Device) -> None:
    def config_get(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
        return device.config_redacted()

    async def config_set(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
        return await device.apply_config(params)

    table.register("config.get", config_get, min_role=Role.ADMIN, params=NO_PARAMS)
    table.register(
        "config.set",
        mapped(config_set),
        min_role=Role.ADMIN,
        params=ParamSpec({}, allow_extra=True),
    )
