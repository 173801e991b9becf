"""The thread lifecycle shared by sources that produce frames on a thread of their own."""

from __future__ import annotations

import logging
import threading
from abc import abstractmethod

from hw.frame import EncodedFrame
from hw.gate import FrameGate
from hw.source import ErrorSink, FrameSink, SourceHealth, VideoSource

logger = logging.getLogger(__name__)

# How long stop() waits for the thread; a thread stuck longer is abandoned (it is a daemon,
# and the gate is closed, so it can never deliver again).
STOP_TIMEOUT = 2.0


class ThreadedSource(VideoSource):
    """A source whose ``_run(stop)`` loop runs on its own daemon thread.

    ``_run`` hands frames to ``_emit(frame)`` (False: stop producing) and reports a failure
    that ends it with ``_fail(reason)``; an exception escaping ``_run`` is reported the same
    way. ``start`` refuses a second start while running; ``stop`` may be called from any
    thread, including from inside the sink (then the loop ends when the sink returns).
    """

    thread_name = "edgecam-source"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop_event = threading.Event()
        self._gate = FrameGate(self.thread_name)

    def start(self, sink: FrameSink, on_error: ErrorSink | None = None) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                raise RuntimeError(f"{self.thread_name} already started")
            self._stop_event = threading.Event()
            self._gate.open(sink, on_error)
            self._thread = threading.Thread(
                target=self._guarded_run,
                args=(self._stop_event,),
                name=self.thread_name,
                daemon=True,
            )
            self._thread.start()

    def stop(self) -> None:
        with self._lock:
            thread = self._thread
            self._stop_event.set()
        self._gate.close(STOP_TIMEOUT)
        if thread is not None and thread is not threading.current_thread():
            thread.join(STOP_TIMEOUT)
            if thread.is_alive():
                logger.warning("%s: thread still busy after stop; abandoned", self.thread_name)

    def health(self) -> SourceHealth:
        with self._lock:
            thread = self._thread
        running = thread is not None and thread.is_alive() and not self._stop_event.is_set()
        return self._gate.health(running)

    def _emit(self, frame: EncodedFrame) -> bool:
        return self._gate.deliver(frame)

    def _fail(self, reason: str) -> None:
        self._gate.fail(reason)

    def _guarded_run(self, stop: threading.Event) -> None:
        try:
            self._run(stop)
        except Exception as exc:
            logger.exception("%s: stopped by an unexpected error", self.thread_name)
            self._fail(f"unexpected error: {exc}")
        else:
            if not stop.is_set():
                self._fail("stopped producing frames")

    @abstractmethod
    def _run(self, stop: threading.Event) -> None:
        """Produce frames with ``_emit`` until ``stop`` is set or ``_emit`` returns False."""
