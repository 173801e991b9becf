"""The bridge from a capture source's thread to the fan-out on the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from agent.media.fanout import FanOut
from hw.frame import EncodedFrame
from hw.source import VideoSource

logger = logging.getLogger(__name__)


class CameraFeed:
    """Starts a source and hands each access unit to the fan-out on the loop.

    Sources call their sink from their own thread (as picamera2's encoder does), so the frame
    crosses over with ``call_soon_threadsafe``; the fan-out itself is never touched off-loop.
    ``on_error(reason)``, if given, is called on the loop when the source fails on its own
    (the supervisor's cue to restart it).
    """

    def __init__(
        self,
        source: VideoSource,
        fanout: FanOut,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.source = source
        self.fanout = fanout
        self._on_error = on_error
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.source.start(self._from_source_thread, self._error_from_source_thread)

    def stop(self) -> None:
        """Stop the source (bounded; blocks, so call it via ``asyncio.to_thread``)."""
        self.source.stop()

    def _call_on_loop(self, callback: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        # The loop may close between the check and the call while shutting down.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(callback, *args)

    def _from_source_thread(self, frame: EncodedFrame) -> None:
        self._call_on_loop(self._on_loop, frame)

    def _error_from_source_thread(self, reason: str) -> None:
        if self._on_error is not None:
            self._call_on_loop(self._on_error, reason)

    def _on_loop(self, frame: EncodedFrame) -> None:
        assert self._loop is not None
        self.fanout.push(frame, self._loop.time())
