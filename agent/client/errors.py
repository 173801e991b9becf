"""What can go wrong when talking to a fleet, as exceptions a script can catch by kind.

Every message is one line a person understands; `edgecam ctl` prints `str(exc)` as it is.
"""

from __future__ import annotations

from typing import Any


class FleetError(Exception):
    """Base of every error raised by `agent.client`."""


class ConnectError(FleetError):
    """The broker could not be reached, or refused us (TLS, certificate, credentials)."""


class NotAuthorised(FleetError):
    """The broker's ACL refused a topic (a subscription or a request topic)."""


class UnknownDevice(FleetError):
    """No device of that id has a retained status on the broker."""

    def __init__(self, device: str) -> None:
        super().__init__(f"{device}: unknown device (no status on the broker)")
        self.device = device


class DeviceOffline(FleetError):
    """The device's retained status says offline (or it went offline during a call)."""

    def __init__(self, device: str) -> None:
        super().__init__(f"{device}: device offline")
        self.device = device


class CallTimeout(FleetError):
    """No response within the call's timeout."""

    def __init__(self, device: str, method: str, timeout: float) -> None:
        super().__init__(f"{device}: {method}: no answer within {timeout:g} s (timeout)")
        self.device = device
        self.method = method
        self.timeout = timeout


class RpcCallError(FleetError):
    """The device answered with a JSON-RPC error (PROTOCOL.md section 3 lists the codes)."""

    def __init__(self, code: int, message: str, data: Any = None, *, device: str = "") -> None:
        prefix = f"{device}: " if device else ""
        super().__init__(f"{prefix}error {code}: {message}")
        self.code = code
        self.message = message
        self.data = data
        self.device = device
