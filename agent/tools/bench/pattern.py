"""The stream every scenario sends: FFmpeg's testsrc2 encoded once (libx264, constrained
baseline, IDR every 2 s), saved to a file, and replayed in real time by `ReplaySource` as a
hardware encoder would hand it over (on its own thread, one access unit per frame period).

Replaying instead of encoding live keeps the encoder's CPU out of the agent's figures (on a Pi
the encoder is in the GPU) and lets the agent process run without PyAV loaded at all.
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

from hw.frame import EncodedFrame
from hw.source import StreamSettings
from hw.threaded import ThreadedSource

_HEADER = struct.Struct("!IqB")  # length, pts_90k, keyframe
HandOff = Callable[[int, float], None]  # (pts_90k, time.time() when handed over)


def encode_test_pattern(
    width: int, height: int, fps: int, seconds: float, bitrate: int
) -> list[EncodedFrame]:
    """Constrained-baseline access units of FFmpeg's testsrc2, IDR every 2 s."""
    import av  # only the bench's parent process encodes

    source = av.open(f"testsrc2=size={width}x{height}:rate={fps}", format="lavfi")
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.time_base = Fraction(1, fps)
    encoder.bit_rate = bitrate
    encoder.options = {
        "preset": "ultrafast",
        "tune": "zerolatency",
        "profile": "baseline",
        "x264-params": f"keyint={2 * fps}:scenecut=0:repeat-headers=1:annexb=1",
    }
    frames: list[EncodedFrame] = []
    for index, picture in enumerate(source.decode(video=0)):
        if index >= seconds * fps:
            break
        picture.pts = index
        picture.pict_type = av.video.frame.PictureType.NONE
        for packet in encoder.encode(picture):
            pts = (packet.pts or 0) * 90000 // fps
            frames.append(EncodedFrame.from_annexb(bytes(packet), pts, packet.is_keyframe))
    source.close()
    return frames


def save_frames(frames: list[EncodedFrame], path: Path) -> None:
    with path.open("wb") as out:
        for frame in frames:
            data = frame.annexb()
            out.write(_HEADER.pack(len(data), frame.pts_90k, frame.keyframe))
            out.write(data)


def load_frames(path: Path) -> list[EncodedFrame]:
    data = path.read_bytes()
    frames: list[EncodedFrame] = []
    at = 0
    while at < len(data):
        length, pts, keyframe = _HEADER.unpack_from(data, at)
        at += _HEADER.size
        frames.append(EncodedFrame.from_annexb(data[at : at + length], pts, bool(keyframe)))
        at += length
    return frames


class ReplaySource(ThreadedSource):
    """Pre-encoded access units at ``fps``, looped (pts keeps growing), on a thread of its own.

    ``on_hand_off(pts_90k, wall)`` is told when each frame goes to the sink: the start of the
    capture-to-socket latency. A keyframe request is noted and ignored (the GOP is fixed).
    """

    thread_name = "bench-replay"

    def __init__(
        self, frames: list[EncodedFrame], fps: int, on_hand_off: HandOff | None = None
    ) -> None:
        super().__init__()
        if not frames:
            raise ValueError("no frames to replay")
        self.frames = frames
        self.fps = fps
        self.on_hand_off = on_hand_off
        self.keyframe_requests = 0
        self._settings = StreamSettings(0, 0, fps, 0)

    @property
    def settings(self) -> StreamSettings:
        return self._settings

    def request_keyframe(self) -> None:
        self.keyframe_requests += 1

    def set_bitrate(self, bitrate: int) -> None:
        pass

    def _run(self, stop: threading.Event) -> None:
        period = 1.0 / self.fps
        loop_pts = self.frames[-1].pts_90k + 90000 // self.fps
        start = time.monotonic()
        index = 0
        while not stop.is_set():
            delay = start + index * period - time.monotonic()
            if delay > 0 and stop.wait(delay):
                return
            base = self.frames[index % len(self.frames)]
            pts = base.pts_90k + (index // len(self.frames)) * loop_pts
            frame = EncodedFrame(base.nal_units, pts, base.keyframe)
            if self.on_hand_off is not None:
                self.on_hand_off(pts, time.time())
            if not self._emit(frame):
                return
            index += 1
