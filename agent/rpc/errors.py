"""JSON-RPC error objects and the error codes of PROTOCOL.md section 3.

A module of its own so that both the dispatcher (`rpc`) and the parameter schema (`params`)
can raise them without importing each other.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, Final, Self

# Client text echoed in an error message or a log line is cut to this many characters.
CLIP: Final = 80


def clip(text: str) -> str:
    """`text`, cut to `CLIP` characters (with "...") so a client cannot flood replies or logs."""
    return text if len(text) <= CLIP else text[:CLIP] + "..."


class ErrorCode(IntEnum):
    """Error codes of PROTOCOL.md section 3."""

    PARSE_ERROR = -32700
    INVALID_REQUEST = -32600
    METHOD_NOT_FOUND = -32601
    INVALID_PARAMS = -32602
    INTERNAL_ERROR = -32603
    UNAUTHORIZED = -32001
    BUSY = -32002
    UNKNOWN_SESSION = -32003
    NEGOTIATION_FAILED = -32004
    RATE_LIMITED = -32005
    CAMERA_UNAVAILABLE = -32006


class RpcError(Exception):
    """A JSON-RPC error object; raised by methods and validators, sent to the caller as is.

    The message goes to the client verbatim, so it must never carry secrets or exception text.
    """

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = int(code)
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        """The `error` member of a response."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error

    @classmethod
    def parse_error(cls, message: str = "parse error", data: Any = None) -> Self:
        return cls(ErrorCode.PARSE_ERROR, message, data)

    @classmethod
    def invalid_request(cls, message: str = "invalid request", data: Any = None) -> Self:
        return cls(ErrorCode.INVALID_REQUEST, message, data)

    @classmethod
    def method_not_found(cls, message: str = "method not found", data: Any = None) -> Self:
        return cls(ErrorCode.METHOD_NOT_FOUND, message, data)

    @classmethod
    def invalid_params(cls, message: str = "invalid params", data: Any = None) -> Self:
        """`message` names the bad field, e.g. ``params.session: expected ...``."""
        return cls(ErrorCode.INVALID_PARAMS, message, data)

    @classmethod
    def internal(cls, message: str = "internal error", data: Any = None) -> Self:
        return cls(ErrorCode.INTERNAL_ERROR, message, data)

    @classmethod
    def unauthorized(cls, message: str = "unauthorized", data: Any = None) -> Self:
        return cls(ErrorCode.UNAUTHORIZED, message, data)

    @classmethod
    def busy(cls, message: str = "busy: viewer limit reached", data: Any = None) -> Self:
        return cls(ErrorCode.BUSY, message, data)

    @classmethod
    def unknown_session(cls, message: str = "unknown session", data: Any = None) -> Self:
        return cls(ErrorCode.UNKNOWN_SESSION, message, data)

    @classmethod
    def negotiation_failed(cls, message: str = "negotiation failed", data: Any = None) -> Self:
        """`message` names what is missing or incompatible in the offer."""
        return cls(ErrorCode.NEGOTIATION_FAILED, message, data)

    @classmethod
    def rate_limited(cls, message: str = "rate limited", data: Any = None) -> Self:
        return cls(ErrorCode.RATE_LIMITED, message, data)

    @classmethod
    def camera_unavailable(cls, message: str = "camera unavailable", data: Any = None) -> Self:
        return cls(ErrorCode.CAMERA_UNAVAILABLE, message, data)
