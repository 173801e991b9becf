"""webrtc.offer / webrtc.candidate / webrtc.close: signalling for one client's sessions."""

from __future__ import annotations

from typing import Any

from agent.control.api import Device
from agent.control.errors import mapped
from agent.rpc.errors import RpcError
from agent.rpc.methods import CallContext, MethodTable
from agent.rpc.params import SESSION_ID, Kind, Param, ParamSpec
from agent.rpc.roles import Role
from agent.rtc.sdp import is_end_of_candidates

# An SDP offer is a few KB; the 64 KiB payload limit bounds it anyway.
OFFER_PARAMS = ParamSpec(
    {
        "session": SESSION_ID,
        "sdp": Param(Kind.STR, required=True, min_length=1),
        # Extension: ICE servers for this session only (same shape as webrtc.ice_servers).
        "ice_servers": Param(Kind.ARRAY),
    }
)
CANDIDATE_PARAMS = ParamSpec(
    {
        "session": SESSION_ID,
        "candidate": Param(Kind.STR, required=True, nullable=True, max_length=1024),
        "sdpMid": Param(Kind.STR, nullable=True, max_length=64),
        "sdpMLineIndex": Param(Kind.INT, nullable=True, minimum=0, maximum=64),
        "usernameFragment": Param(Kind.STR, nullable=True, max_length=256),
    }
)
CLOSE_PARAMS = ParamSpec({"session": SESSION_ID})


def register(table: MethodTable, device: Device) -> None:
    async def offer(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
        if not device.allow_offer(ctx.client_id):
            raise RpcError.rate_limited("too many offers; try again shortly")
        servers = params.get("ice_servers")
        # Servers the device connects to on a client's word: an operator's decision, or any
        # viewer could make the device probe hosts on its own network.
        if servers is not None and ctx.role < Role.OPERATOR:
            raise RpcError.unauthorized("params.ice_servers needs role operator")
        answer = await device.offer(ctx.client_id, params["session"], params["sdp"], servers)
        return {"session": params["session"], "sdp": answer}

    async def candidate(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
        # Firefox ends each section's candidates with an empty string, then null: the same.
        text = None if is_end_of_candidates(params["candidate"]) else params["candidate"]
        try:
            await device.add_candidate(ctx.client_id, params["session"], text, params.get("sdpMid"))
        except ValueError as exc:
            raise RpcError.invalid_params(f"params.candidate: {exc}") from None
        return {}

    async def close(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
        await device.close_session(ctx.client_id, params["session"], "closed by client")
        return {}

    table.register("webrtc.offer", mapped(offer), min_role=Role.VIEWER, params=OFFER_PARAMS)
    table.register(
        "webrtc.candidate", mapped(candidate), min_role=Role.VIEWER, params=CANDIDATE_PARAMS
    )
    table.register("webrtc.close", mapped(close), min_role=Role.VIEWER, params=CLOSE_PARAMS)
