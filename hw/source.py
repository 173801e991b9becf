"""The interface shared by every capture source (testsrc, file, picamera2, v4l2).

Threading: a source produces frames on a thread of its own (picamera2's encoder thread, or
one the source starts). ``start(sink, on_error)`` returns at once; ``sink`` is then called
from that thread with each frame, so the consumer must hand frames over to its own loop
(``loop.call_soon_threadsafe``) and never block in it. Every other method is safe to call
from any thread.

Health, for a supervisor (the runtime restarts a failed source with backoff):
- ``on_error(reason)`` is called (from the source's thread) when the source fails on its
  own: the device went away, the encoder raised, the file became unreadable. After it the
  source delivers no more frames; ``stop()`` it, then open a new one.
- A stall cannot report itself (the thread that would say so is the one stuck), so the
  supervisor polls ``health()`` and calls ``SourceHealth.stalled(now, timeout)`` with
  ``time.monotonic()``: true when no frame came for ``timeout`` seconds while running.
- ``health().dropped`` counts frames dropped between the encoder and the consumer (a full
  hand-off queue), for telemetry.

Stop: ``stop()`` is idempotent, bounded in time (it waits for the source's thread at most a
couple of seconds, then abandons it as a daemon) and final: once it returns, the sink is
never called again.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from hw.controls import ControlInfo, ControlValue
from hw.frame import EncodedFrame

FrameSink = Callable[[EncodedFrame], None]
ErrorSink = Callable[[str], None]


class H264Profile(StrEnum):
    """Profiles a hardware encoder may be asked for; browsers' WebRTC offers no High."""

    CONSTRAINED_BASELINE = "constrained baseline"
    MAIN = "main"


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """What the encoder is asked to produce."""

    width: int
    height: int
    framerate: float
    bitrate: int


@dataclass(frozen=True, slots=True)
class SourceHealth:
    """A snapshot of a source's liveness; times are ``time.monotonic()`` seconds."""

    running: bool
    started_at: float | None
    last_frame_at: float | None
    frames: int
    dropped: int
    error: str | None  # why the source failed on its own, if it did

    def stalled(self, now: float, timeout: float) -> bool:
        """Running, yet no frame for ``timeout`` seconds (counted from start before any)."""
        if not self.running or self.error is not None:
            return False
        since = self.last_frame_at if self.last_frame_at is not None else self.started_at
        return since is not None and now - since > timeout


class VideoSource(ABC):
    """A camera and its H.264 encoder (see the module docstring for threading and health)."""

    @property
    @abstractmethod
    def settings(self) -> StreamSettings:
        """The settings in force now."""

    @abstractmethod
    def start(self, sink: FrameSink, on_error: ErrorSink | None = None) -> None:
        """Start capturing without blocking; ``sink`` gets every frame on the source's thread.

        Failures after this returns (including a file or device that cannot be opened) go
        to ``on_error`` and ``health().error``, never to the caller.
        """

    @abstractmethod
    def stop(self) -> None:
        """Stop capturing; idempotent, bounded, and no sink call starts after it returns."""

    @abstractmethod
    def health(self) -> SourceHealth:
        """Liveness for a supervisor: frames, last frame time, drops, failure reason."""

    @abstractmethod
    def request_keyframe(self) -> None:
        """Ask for an IDR (with SPS/PPS) as soon as the encoder can give one."""

    @abstractmethod
    def set_bitrate(self, bitrate: int) -> None:
        """Change the target bitrate in bits per second, while running."""

    def controls(self) -> dict[str, ControlInfo]:
        """The camera controls this source supports (``hw.controls.CONTROL_NAMES``), now."""
        return {}

    def set_controls(self, values: Mapping[str, object]) -> dict[str, ControlValue]:
        """Apply controls (live where possible: see ``ControlInfo.live``); the values applied.

        All or nothing: ValueError naming the first unknown name or bad value.
        """
        if values:
            raise ValueError(f"this camera source has no controls (asked for {', '.join(values)})")
        return {}

    def snapshot_jpeg(self, quality: int) -> tuple[bytes, int, int] | None:
        """A JPEG (and its size) straight from the camera, or None if this source has none.

        Blocks for up to a frame time: call it off the event loop. None means: decode the
        cached GOP instead (``agent.media.snapshot.jpeg_from_gop``).
        """
        return None
