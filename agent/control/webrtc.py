"""webrtc.offer / webrtc.candidate / webrtc.close: signalling for one client's sessions."""

from __future__ import annotations

from typing import Any

from agent.control.api import Device
from agent.rtc.sdp import NegotiationError
from agent.sessions import BusyError, CameraUnavailableError, UnknownSessionError
from agent.signaling.params import SESSION_ID, Kind, Param, ParamSpec
from agent.signaling.rpc import CallContext, MethodTable, Role, RpcError

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
        if not device.offer_limiter.allow(ctx.client_id, device.now()):
            raise RpcError.rate_limited("too many offers; try again shortly")
        servers = None
        if params.get("ice_servers") is not None:
            # Servers the device connects to on a client's word: an operator's decision, or
            # any viewer could make the device probe hosts on its own network.
            if ctx.role < Role.OPERATOR:
                raise RpcError.unauthorized("params.ice_servers needs role operator")
            try:
                servers = device.ice_servers_from(params["ice_servers"])
            except ValueError as exc:
                raise RpcError.invalid_params(f"params.ice_servers: {exc}") from None
        try:
            answer = await device.sessions.offer(
                ctx.client_id, params["session"], params["sdp"], ice_servers=servers
            )
        except NegotiationError as exc:
            raise RpcError.negotiation_failed(str(exc)) from None
        except BusyError as exc:
            raise RpcError.busy(str(exc)) from None
        except CameraUnavailableError as exc:
            raise RpcError.camera_unavailable(str(exc)) from None
        except UnknownSessionError as exc:
            raise RpcError.unknown_session(str(exc)) from None
        return {"session": params["session"], "sdp": answer}

    async def candidate(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
        try:
            await device.sessions.add_candidate(
                ctx.client_id, params["session"], params["candidate"], params.get("sdpMid")
            )
        except UnknownSessionError as exc:
            raise RpcError.unknown_session(str(exc)) from None
        except ValueError as exc:
            raise RpcError.invalid_params(f"params.candidate: {exc}") from None
        return {}

    async def close(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
        try:
            await device.sessions.close(ctx.client_id, params["session"])
        except UnknownSessionError as exc:
            raise RpcError.unknown_session(str(exc)) from None
        return {}

    table.register("webrtc.offer", offer, min_role=Role.VIEWER, params=OFFER_PARAMS)
    table.register("webrtc.candidate", candidate, min_role=Role.VIEWER, params=CANDIDATE_PARAMS)
    table.register("webrtc.close", close, min_role=Role.VIEWER, params=CLOSE_PARAMS)
