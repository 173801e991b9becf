"""What the control methods need from the running agent, and nothing more.

The methods are shared by MQTT and the datachannel and know nothing of sockets or brokers;
``app.py`` provides an object with this shape.
"""

from __future__ import annotations

from typing import Any, Protocol

from agent.net.ice import IceServers
from agent.sessions import SessionManager
from agent.signaling.ratelimit import PerKeyLimiter


class StreamChangeError(Exception):
    """stream.set asked for something the camera cannot do."""


class Device(Protocol):
    sessions: SessionManager
    offer_limiter: PerKeyLimiter

    def now(self) -> float: ...

    def status(self) -> dict[str, Any]: ...

    def stream_info(self) -> dict[str, Any]: ...

    def request_keyframe(self) -> None: ...

    async def set_stream(self, changes: dict[str, Any]) -> dict[str, Any]: ...

    async def snapshot(self, quality: int) -> tuple[bytes, int, int]: ...

    def config_redacted(self) -> dict[str, Any]: ...

    async def apply_config(self, patch: dict[str, Any]) -> dict[str, Any]: ...

    def ice_servers_from(self, servers: list[dict[str, Any]]) -> IceServers: ...
