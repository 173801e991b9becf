"""The thread lifecycle shared by sources that produce frames on a thread of their own."""

from __future__ import annotations

import threading
from abc import abstractmethod

from hw.source import FrameSink, VideoSource


class ThreadedSource(VideoSource):
    """A source whose ``_run(sink, stop)`` loop runs on its own daemon thread.

    ``start`` refuses a second start while running; ``stop`` may be called from any thread,
    including from inside the sink (then the loop ends when the sink returns).
    """

    thread_name = "edgecam-source"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop_event = threading.Event()

    def start(self, sink: FrameSink) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                raise RuntimeError(f"{self.thread_name} already started")
            self._stop_event = threading.Event()
            self._thread = threading.Thread(
                target=self._run,
                args=(sink, self._stop_event),
                name=self.thread_name,
                daemon=True,
            )
            self._thread.start()

    def stop(self) -> None:
        with self._lock:
            thread = self._thread
            self._stop_event.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    @abstractmethod
    def _run(self, sink: FrameSink, stop: threading.Event) -> None:
        """Produce frames into ``sink`` until ``stop`` is set."""
