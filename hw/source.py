"""The interface shared by every capture source (testsrc, file, picamera2, v4l2)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from hw.frame import EncodedFrame

FrameSink = Callable[[EncodedFrame], None]


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """What the encoder is asked to produce."""

    width: int
    height: int
    framerate: float
    bitrate: int


class VideoSource(ABC):
    """A camera and its H.264 encoder.

    Like picamera2's encoder, a source runs on its own thread: ``start(sink)`` returns at once
    and ``sink`` is then called from that thread with each access unit, so the consumer must
    hand frames over to its own loop (``loop.call_soon_threadsafe``). Every other method is
    safe to call from any thread.
    """

    @property
    @abstractmethod
    def settings(self) -> StreamSettings:
        """The settings in force now."""

    @abstractmethod
    def start(self, sink: FrameSink) -> None:
        """Start capturing; ``sink`` is called from the source's thread for every frame."""

    @abstractmethod
    def stop(self) -> None:
        """Stop capturing and wait for the source's thread to end. Idempotent."""

    @abstractmethod
    def request_keyframe(self) -> None:
        """Ask for an IDR (with SPS/PPS) as soon as the encoder can give one."""

    @abstractmethod
    def set_bitrate(self, bitrate: int) -> None:
        """Change the target bitrate in bits per second, while running."""
