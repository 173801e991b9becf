"""Why a session request was refused: raised by the session manager, mapped to JSON-RPC
errors by the control methods (-32002, -32003, -32006)."""

from __future__ import annotations


class BusyError(Exception):
    """No session for this offer; ``reason`` says which limit: "client_limit" (this
    client's share), "viewer_limit" (the device's max_viewers) or "shutting_down"."""

    def __init__(self, message: str, reason: str = "viewer_limit") -> None:
        super().__init__(message)
        self.reason = reason

    @property
    def data(self) -> dict[str, str]:
        """The -32002 error's data (PROTOCOL.md additions A2)."""
        return {"reason": self.reason}


class UnknownSessionError(Exception):
    """No such session for this client (or it ended while its offer was answered)."""


class CameraUnavailableError(Exception):
    """The camera gave nothing to answer with (no keyframe in time)."""
