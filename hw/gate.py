"""The gate between a source's producing thread and its consumer: delivery, stop, health."""

from __future__ import annotations

import logging
import threading
import time

from hw.frame import EncodedFrame
from hw.source import ErrorSink, FrameSink, SourceHealth

logger = logging.getLogger(__name__)


class FrameGate:
    """Delivers frames to a sink until closed, and keeps the numbers ``health()`` reports.

    ``close()`` waits for a delivery in progress (bounded by ``timeout``), so once it returns
    no sink call can start: the guarantee behind ``VideoSource.stop()``. Delivery and close
    share a re-entrant lock, so a sink may itself stop the source; the counters have a lock
    of their own, so an encoder thread counting a drop or a supervisor reading ``health``
    never waits for a slow sink.
    A sink that raises is logged once per run of failures and does not stop the source.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.RLock()
        self._stats = threading.Lock()
        self._sink: FrameSink | None = None
        self._on_error: ErrorSink | None = None
        self._started_at: float | None = None
        self._last_frame_at: float | None = None
        self._frames = 0
        self._dropped = 0
        self._error: str | None = None
        self._sink_failing = False

    def open(self, sink: FrameSink, on_error: ErrorSink | None) -> None:
        """Start a new run: counters reset, frames flow to ``sink``."""
        with self._lock, self._stats:
            self._sink, self._on_error = sink, on_error
            self._started_at = time.monotonic()
            self._last_frame_at = None
            self._frames = self._dropped = 0
            self._error = None
            self._sink_failing = False

    @property
    def is_open(self) -> bool:
        return self._sink is not None

    def deliver(self, frame: EncodedFrame) -> bool:
        """Hand one frame to the sink; False once the gate is closed."""
        with self._lock:
            sink = self._sink
            if sink is None:
                return False
            with self._stats:
                self._frames += 1
                self._last_frame_at = time.monotonic()
            try:
                sink(frame)
            except Exception:
                if not self._sink_failing:
                    logger.exception("%s: the frame sink failed", self._name)
                self._sink_failing = True
            else:
                self._sink_failing = False
            return True

    def dropped(self, count: int = 1) -> None:
        """Count frames lost before the sink (a full hand-off queue)."""
        with self._stats:
            self._dropped += count

    def fail(self, reason: str) -> None:
        """The source failed on its own: record why, close, tell ``on_error`` once."""
        with self._stats:
            if self._sink is None or self._error is not None:
                return
            self._error = reason
            on_error = self._on_error
            self._sink = None
        logger.error("%s: %s", self._name, reason)
        if on_error is not None:
            try:
                on_error(reason)
            except Exception:
                logger.exception("%s: the error callback failed", self._name)

    def close(self, timeout: float) -> bool:
        """No sink call starts after this returns; False if a delivery outlived ``timeout``."""
        if not self._lock.acquire(timeout=timeout):
            # A sink stuck in a call: drop the reference anyway, delivery checks it first.
            self._sink = None
            logger.warning("%s: the sink is stuck; stopped without waiting for it", self._name)
            return False
        try:
            self._sink = None
        finally:
            self._lock.release()
        return True

    def health(self, running: bool) -> SourceHealth:
        with self._stats:
            return SourceHealth(
                running=running and self._error is None,
                started_at=self._started_at,
                last_frame_at=self._last_frame_at,
                frames=self._frames,
                dropped=self._dropped,
                error=self._error,
            )
