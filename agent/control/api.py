"""What the control methods need from the running agent, and nothing more.

The methods are shared by MQTT and the datachannel and know nothing of sockets, brokers or
the session manager; ``agent.runtime`` provides an object of this shape.
"""

from __future__ import annotations

from typing import Any, Protocol


class StreamChangeError(Exception):
    """The camera cannot do what was asked (stream.set, camera.snapshot, config.set)."""


class BadParamsError(ValueError):
    """A param the device cannot use (-32602); the message names it (``params.x: ...``)."""


class Device(Protocol):
    def status(self) -> dict[str, Any]: ...

    def stream_info(self) -> dict[str, Any]: ...

    def request_keyframe(self) -> None: ...

    async def set_stream(self, changes: dict[str, Any]) -> dict[str, Any]: ...

    async def snapshot(self, quality: int) -> tuple[bytes, int, int]: ...

    def config_redacted(self) -> dict[str, Any]: ...

    async def apply_config(self, patch: dict[str, Any]) -> dict[str, Any]: ...

    def allow_offer(self, client: str) -> bool:
        """Whether ``client`` is within its offer rate limit (takes one token)."""
        ...

    async def offer(
        self, client: str, session: str, sdp: str, ice_servers: list[dict[str, Any]] | None
    ) -> str:
        """The answer SDP; ``ice_servers`` replaces the configured ones for this session
        (BadParamsError naming the bad entry)."""
        ...

    async def add_candidate(
        self, client: str, session: str, candidate: str | None, mid: str | None
    ) -> None: ...

    async def close_session(self, client: str, session: str, reason: str) -> None: ...

    def session_rows(self) -> list[dict[str, Any]]: ...

    async def camera_controls(self) -> dict[str, dict[str, Any]]:
        """What this camera supports: {name: {type, min, max, default, value, ...}}."""
        ...

    async def set_camera_controls(self, values: dict[str, Any]) -> dict[str, Any]:
        """Apply (live where the camera allows) and save; BadParamsError naming a bad one."""
        ...

    def subscribe_stats(self, client: str, session: str, interval: float | None) -> None:
        """`session.stats` on the session's control channel every ``interval`` s (default 1);
        UnknownSessionError when ``client`` has no such session with an open channel."""
        ...
