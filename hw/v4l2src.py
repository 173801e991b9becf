"""USB (UVC) and other V4L2 cameras through PyAV's video4linux2 input.

A camera that emits H.264 is passed through untouched (only SPS/PPS are restored in front of
an IDR that lacks them). MJPEG and YUYV cameras are decoded and encoded for WebRTC with
``h264_v4l2m2m`` where that encoder works (Pi 0-4), libx264 otherwise. The mode (format,
size, rate) is negotiated with what the device lists, failing with what it does offer.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from fractions import Fraction
from typing import Any

import av
from av.video.codeccontext import VideoCodecContext
from av.video.frame import PictureType, VideoFrame

from hw.annexb import ParameterSetCache
from hw.bounded import run_bounded
from hw.controls import ControlInfo, ControlValue
from hw.frame import EncodedFrame
from hw.source import StreamSettings
from hw.threaded import ThreadedSource
from hw.v4l2caps import DeviceChoice, DeviceMode, check_device, list_modes, negotiate
from hw.v4l2controls import V4l2Controls
from hw.x264 import EncoderRequests, open_h264_encoder

logger = logging.getLogger(__name__)

OPEN_TIMEOUT_S = 5.0
ENCODERS = ("h264_v4l2m2m", "libx264")
_MIN_BITRATE = 1000

# (path, format, options) -> an open input container; tests give a PyAV input of their own.
Opener = Callable[[str, str, dict[str, str]], Any]


def _open_device(path: str, fmt: str, options: dict[str, str]) -> Any:
    return av.open(path, format=fmt, options=options)


@contextmanager
def _device_controls(path: str) -> Iterator[V4l2Controls]:
    # A second open of the node: V4L2 allows control access beside a streaming open.
    try:
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    except OSError as exc:
        raise ValueError(f"V4L2 device {path!r}: {exc.strerror or exc}") from None
    try:
        yield V4l2Controls(fd)
    finally:
        os.close(fd)


def read_modes(path: str, timeout: float = OPEN_TIMEOUT_S) -> list[DeviceMode]:
    """The device's capture modes; ValueError naming the path if it cannot be read in time."""
    check_device(path)

    def work() -> list[DeviceMode]:
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        try:
            return list_modes(fd)
        finally:
            os.close(fd)

    try:
        return run_bounded(work, timeout, f"V4L2 device {path!r}: listing formats")
    except OSError as exc:
        raise ValueError(f"V4L2 device {path!r}: {exc.strerror or exc}") from None


class V4l2Source(ThreadedSource):
    """A V4L2 camera at ``path`` (``/dev/videoN``) as an H.264 stream.

    ``modes`` defaults to what the device lists; ``opener`` to ``av.open`` with the
    video4linux2 demuxer. Passthrough streams cannot make an IDR on demand or change their
    bitrate (both are no-ops, logged once); encoded ones can, as testsrc does.
    """

    thread_name = "edgecam-v4l2"

    def __init__(
        self,
        path: str,
        settings: StreamSettings,
        *,
        modes: Sequence[DeviceMode] | None = None,
        opener: Opener = _open_device,
        encoders: Sequence[str] = ENCODERS,
        controls: Callable[[str], AbstractContextManager[V4l2Controls]] = _device_controls,
    ) -> None:
        if settings.bitrate < _MIN_BITRATE:
            raise ValueError(f"bitrate must be at least {_MIN_BITRATE} bps")
        offered = read_modes(path) if modes is None else list(modes)
        self.choice: DeviceChoice = negotiate(
            offered, settings.width, settings.height, settings.framerate, path
        )
        super().__init__()
        self._path = path
        self._settings = settings
        self._opener = opener
        self._controls = controls
        self._encoders = tuple(encoders)
        self._rate = Fraction(settings.framerate).limit_denominator(1001)
        self._keyint = max(1, round(2 * settings.framerate))
        self._requests = EncoderRequests()
        self.encoder_name: str | None = None  # which encoder the running stream uses
        self._noted_passthrough = False

    @property
    def settings(self) -> StreamSettings:
        with self._lock:
            return self._settings

    def controls(self) -> dict[str, ControlInfo]:
        """The device's V4L2 controls in the agent's names (all live)."""
        with self._controls(self._path) as device:
            return device.list()

    def set_controls(self, values: Mapping[str, object]) -> dict[str, ControlValue]:
        with self._controls(self._path) as device:
            return device.apply(values)

    def request_keyframe(self) -> None:
        self._requests.keyframe()

    def set_bitrate(self, bitrate: int) -> None:
        if bitrate < _MIN_BITRATE:
            raise ValueError(f"bitrate must be at least {_MIN_BITRATE} bps, got {bitrate}")
        if self.choice.passthrough:
            if not self._noted_passthrough:
                self._noted_passthrough = True
                logger.info("v4l2 %r: the camera encodes H.264 itself: bitrate kept", self._path)
            return
        with self._lock:
            self._requests.bitrate(bitrate)
            self._settings = dataclasses.replace(self._settings, bitrate=bitrate)

    def _run(self, stop: threading.Event) -> None:
        options = self.choice.av_options()
        try:
            container = self._opener(self._path, "video4linux2", options)
        except (av.FFmpegError, OSError) as exc:
            self._fail(f"cannot open V4L2 device {self._path!r} with {options}: {exc}")
            return
        try:
            stream = container.streams.video[0]
            if self.choice.passthrough:
                self._pass_through(container.demux(stream), stream.time_base, stop)
            else:
                self._encode(container.decode(stream), stop)
        except av.FFmpegError as exc:
            self._fail(f"V4L2 device {self._path!r}: read error: {exc}")
        finally:
            container.close()

    def _pass_through(
        self, packets: Iterator[av.Packet[Any]], time_base: Fraction | None, stop: threading.Event
    ) -> None:
        cache = ParameterSetCache(None)
        tb = time_base or Fraction(1, 1_000_000)
        origin: int | None = None
        for packet in packets:
            if stop.is_set():
                return
            raw = bytes(packet)
            if not raw:
                continue
            units, idr = cache.complete(raw)
            if origin is None:
                if not idr:
                    continue  # a viewer needs an IDR first
                origin = packet.pts or 0
            pts = round(((packet.pts or 0) - origin) * tb * 90000)
            if not self._emit(EncodedFrame(units, pts, idr)):
                return
        self._fail(f"V4L2 device {self._path!r}: the stream ended")

    def _open_encoder(self, bitrate: int) -> VideoCodecContext:
        s = self._settings
        errors = []
        for name in self._encoders:
            try:
                encoder = open_h264_encoder(
                    s.width, s.height, self._rate, bitrate, self._keyint, codec=name
                )
            except (av.FFmpegError, ValueError) as exc:
                errors.append(f"{name}: {exc}")
                continue
            self.encoder_name = name
            return encoder
        raise ValueError(f"no H.264 encoder could be opened ({'; '.join(errors)})")

    def _encode(self, pictures: Iterator[VideoFrame], stop: threading.Event) -> None:
        encoder: VideoCodecContext | None = None
        ceiling = 0
        for index, picture in enumerate(pictures):
            if stop.is_set():
                return
            force_idr, bitrate = self._requests.take()
            live = self.encoder_name == "libx264" and bitrate is not None and bitrate <= ceiling
            if encoder is not None and live:
                # libx264 under VBV takes a lower bitrate live (hw/x264.py): no new IDR, which
                # matters when the bandwidth policy changes it every second or so.
                encoder.bit_rate = bitrate
            elif encoder is None or bitrate is not None:
                # Otherwise a new bitrate reopens the encoder: M2M encoders take no live
                # change here, and the next frame is then an IDR for everyone.
                ceiling = bitrate or self.settings.bitrate
                encoder = self._open_encoder(ceiling)
            frame = (
                picture.reformat(format="yuv420p") if picture.format.name != "yuv420p" else picture
            )
            frame.pts = index
            frame.time_base = encoder.time_base
            frame.pict_type = PictureType.I if force_idr else PictureType.NONE
            for packet in encoder.encode(frame):
                pts = (packet.pts if packet.pts is not None else index) * 90000
                pts = pts * self._rate.denominator // self._rate.numerator
                if not self._emit(EncodedFrame.from_annexb(bytes(packet), pts)):
                    return
        self._fail(f"V4L2 device {self._path!r}: the stream ended")
