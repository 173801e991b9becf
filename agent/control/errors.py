"""The one table from the agent's refusals to JSON-RPC errors (PROTOCOL.md section 3).

Every method handler is registered through ``mapped``, so a refusal means the same code
whichever method raised it, and a bug of ours (anything not in the table) stays -32603.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, Final

from agent.config import ConfigError
from agent.control.api import BadParamsError, StreamChangeError
from agent.net.errors import BusyError, CameraUnavailableError, UnknownSessionError
from agent.rpc.errors import RpcError
from agent.rpc.methods import CallContext, Handler
from agent.rtc.sdp import NegotiationError

ERROR_TABLE: Final[tuple[tuple[type[Exception], Callable[[str, Any], RpcError]], ...]] = (
    (NegotiationError, RpcError.negotiation_failed),
    (BusyError, RpcError.busy),
    (UnknownSessionError, RpcError.unknown_session),
    (CameraUnavailableError, RpcError.camera_unavailable),
    (StreamChangeError, RpcError.camera_unavailable),
    (ConfigError, RpcError.invalid_params),
    (BadParamsError, RpcError.invalid_params),
)


def rpc_error_for(exc: Exception) -> RpcError | None:
    """The JSON-RPC error for a refusal, or None when ``exc`` is not one. An exception's
    ``data`` attribute, when it has one, becomes the error's data."""
    for kind, make in ERROR_TABLE:
        if isinstance(exc, kind):
            return make(str(exc), getattr(exc, "data", None))
    return None


def mapped(handler: Handler) -> Handler:
    """``handler`` with the refusals of `ERROR_TABLE` turned into their RpcError."""

    @functools.wraps(handler)
    async def call(ctx: CallContext, params: dict[str, Any]) -> object:
        try:
            result = handler(ctx, params)
            if inspect.isawaitable(result):
                result = await result
            return result
        except RpcError:
            raise
        except Exception as exc:
            error = rpc_error_for(exc)
            if error is None:
                raise
            raise error from None

    return call
