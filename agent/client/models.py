"""What the fleet client hands back: devices from retained status, call results, messages."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from agent.client.errors import FleetError, RpcCallError


@dataclass(frozen=True)
class DeviceInfo:
    """One device as its retained status object (PROTOCOL.md section 5) describes it.

    `last_seen` is when this client received that status (wall clock); `online` is False for
    the will's (or a clean stop's) `{"state": "offline"}`.
    """

    id: str
    state: str
    version: str | None
    viewers: int | None
    stream: dict[str, Any] | None
    uptime: float | None
    ts: float | None
    last_seen: float
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def online(self) -> bool:
        return self.state == "online"

    @classmethod
    def from_status(cls, device: str, status: dict[str, Any], received: float) -> DeviceInfo:
        """Read a status object leniently: a field of the wrong type is left out (None)."""

        def typed(name: str, kind: type | tuple[type, ...]) -> Any:
            value = status.get(name)
            return value if isinstance(value, kind) and not isinstance(value, bool) else None

        state = status.get("state")
        return cls(
            id=device,
            state=state if isinstance(state, str) else "unknown",
            version=typed("version", str),
            viewers=typed("viewers", int),
            stream=typed("stream", dict),
            uptime=typed("uptime", (int, float)),
            ts=typed("ts", (int, float)),
            last_seen=received,
            raw=status,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state,
            "version": self.version,
            "viewers": self.viewers,
            "stream": self.stream,
            "uptime": self.uptime,
            "last_seen": self.last_seen,
        }


@dataclass(frozen=True)
class CallResult:
    """One device's outcome in a fan-out: `result`, or `error` (a FleetError)."""

    device: str
    result: Any = None
    error: FleetError | None = None
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"device": self.device, "ok": self.ok}
        if self.error is None:
            out["result"] = self.result
        elif isinstance(self.error, RpcCallError):
            out["error"] = {
                "code": self.error.code,
                "message": self.error.message,
                "data": self.error.data,
            }
        else:
            out["error"] = {"kind": type(self.error).__name__, "message": str(self.error)}
        out["elapsed"] = round(self.elapsed, 4)
        return out


@dataclass(frozen=True)
class DeviceMessage:
    """One message of a device's `events` or `telemetry` topic, decoded."""

    device: str
    kind: str  # "events" | "telemetry"
    body: dict[str, Any]
    received: float = field(default_factory=time.time)
