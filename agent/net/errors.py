"""Why a session request was refused: raised by the session manager, mapped to JSON-RPC
errors by the control methods (-32002, -32003, -32006)."""

from __future__ import annotations


class BusyError(Exception):
    """No room for another viewer: the device's or this client's session limit."""


class UnknownSessionError(Exception):
    """No such session for this client (or it ended while its offer was answered)."""


class CameraUnavailableError(Exception):
    """The camera gave nothing to answer with (no keyframe in time)."""
