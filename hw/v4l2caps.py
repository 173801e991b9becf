"""What a V4L2 capture device offers, and choosing the mode a stream asks for.

PyAV cannot enumerate a device's formats, so they are read with the V4L2 ioctls
(VIDIOC_ENUM_FMT, VIDIOC_ENUM_FRAMESIZES, VIDIOC_ENUM_FRAMEINTERVALS) through fcntl.
"""

from __future__ import annotations

import fcntl
import os
import stat
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass


def _iowr(nr: int, size: int) -> int:
    return (3 << 30) | (size << 16) | (ord("V") << 8) | nr


_FMTDESC = struct.Struct("=III32sII12x")  # struct v4l2_fmtdesc, 64 bytes
_FRMSIZE = struct.Struct("=III24s8x")  # struct v4l2_frmsizeenum, 44 bytes
_FRMIVAL = struct.Struct("=IIIII24s8x")  # struct v4l2_frmivalenum, 52 bytes
VIDIOC_ENUM_FMT = _iowr(2, _FMTDESC.size)
VIDIOC_ENUM_FRAMESIZES = _iowr(74, _FRMSIZE.size)
VIDIOC_ENUM_FRAMEINTERVALS = _iowr(75, _FRMIVAL.size)
_CAPTURE = 1  # V4L2_BUF_TYPE_VIDEO_CAPTURE
_DISCRETE = 1
_MAX_ENTRIES = 256  # a driver that never says EINVAL must not loop us forever

# Device pixel formats the agent can use, best first, with PyAV's input_format names.
INPUT_FORMATS = {"H264": "h264", "MJPG": "mjpeg", "YUYV": "yuyv422"}

Ioctl = Callable[[int, int, bytes], bytes]


@dataclass(frozen=True, slots=True)
class DeviceMode:
    """One size of one pixel format, with the frame rates offered there (empty: any)."""

    fourcc: str
    width: int
    height: int
    rates: tuple[float, ...]

    def describe(self) -> str:
        rates = "/".join(f"{r:g}" for r in self.rates) or "any"
        return f"{self.fourcc} {self.width}x{self.height}@{rates}"


@dataclass(frozen=True, slots=True)
class DeviceChoice:
    """The mode to open: what ``av.open(..., format="video4linux2", options=...)`` needs."""

    fourcc: str
    width: int
    height: int
    framerate: float

    @property
    def passthrough(self) -> bool:
        """The camera encodes H.264 itself: its access units go out untouched."""
        return self.fourcc == "H264"

    def av_options(self) -> dict[str, str]:
        return {
            "input_format": INPUT_FORMATS[self.fourcc],
            "video_size": f"{self.width}x{self.height}",
            "framerate": f"{self.framerate:g}",
        }


def check_device(path: str) -> None:
    """ValueError naming ``path`` unless it is a character device (by stat, not opening)."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise ValueError(f"V4L2 device {path!r}: {exc.strerror or exc}") from None
    if not stat.S_ISCHR(info.st_mode):
        raise ValueError(f"V4L2 device {path!r}: not a character device")


def _fourcc(code: int) -> str:
    return code.to_bytes(4, "little").decode("ascii", "replace").strip()


def _enumerate(ioctl: Ioctl, request: int, make: Callable[[int], bytes]) -> list[bytes]:
    out = []
    for index in range(_MAX_ENTRIES):
        try:
            out.append(ioctl(request, index, make(index)))
        except OSError:  # EINVAL: past the last entry
            break
    return out


def list_modes(fd: int, ioctl: Ioctl | None = None) -> list[DeviceMode]:
    """Every capture mode of an open V4L2 device (stepwise sizes: their smallest and largest)."""
    call = ioctl or (lambda request, _index, buf: bytes(fcntl.ioctl(fd, request, buf)))
    modes: list[DeviceMode] = []
    for raw in _enumerate(
        call, VIDIOC_ENUM_FMT, lambda i: _FMTDESC.pack(i, _CAPTURE, 0, b"", 0, 0)
    ):
        pixfmt = _FMTDESC.unpack(raw)[4]
        fourcc = _fourcc(pixfmt)
        frmsizes = _enumerate(call, VIDIOC_ENUM_FRAMESIZES, _size_query(pixfmt))
        for size in frmsizes:
            _, _, kind, body = _FRMSIZE.unpack(size)
            if kind == _DISCRETE:
                sizes = [struct.unpack_from("=II", body)]
            else:  # stepwise/continuous: min_w, max_w, step_w, min_h, max_h, step_h
                min_w, max_w, _, min_h, max_h, _ = struct.unpack("=6I", body)
                sizes = [(min_w, min_h), (max_w, max_h)]
            for width, height in sizes:
                rates = _rates(call, pixfmt, width, height)
                modes.append(DeviceMode(fourcc, width, height, rates))
    return modes


def _size_query(pixfmt: int) -> Callable[[int], bytes]:
    return lambda index: _FRMSIZE.pack(index, pixfmt, 0, b"")


def _rates(call: Ioctl, pixfmt: int, width: int, height: int) -> tuple[float, ...]:
    rates = []
    for raw in _enumerate(
        call,
        VIDIOC_ENUM_FRAMEINTERVALS,
        lambda i: _FRMIVAL.pack(i, pixfmt, width, height, 0, b""),
    ):
        kind, body = _FRMIVAL.unpack(raw)[4:6]
        if kind != _DISCRETE:
            return ()  # a continuous range: any rate the stream asks for
        numerator, denominator = struct.unpack_from("=II", body)
        if numerator:
            rates.append(round(denominator / numerator, 3))
    return tuple(sorted(set(rates), reverse=True))


def negotiate(
    modes: Sequence[DeviceMode], width: int, height: int, framerate: float, device: str
) -> DeviceChoice:
    """The best mode for the stream (H.264 > MJPEG > YUYV at the exact size and rate).

    ValueError naming what the device does offer when none fits.
    """
    for fourcc in INPUT_FORMATS:
        for mode in modes:
            if (mode.fourcc, mode.width, mode.height) != (fourcc, width, height):
                continue
            if not mode.rates or any(abs(r - framerate) < 0.01 * framerate for r in mode.rates):
                return DeviceChoice(fourcc, width, height, framerate)
    usable = [m.describe() for m in modes if m.fourcc in INPUT_FORMATS]
    others = sorted({m.fourcc for m in modes} - set(INPUT_FORMATS))
    offer = "; ".join(usable[:24]) or "no H264, MJPG or YUYV mode"
    if others:
        offer += f" (also {', '.join(others)}, which edgecam cannot use)"
    raise ValueError(
        f"V4L2 device {device!r} cannot give {width}x{height}@{framerate:g} as H264, MJPG or "
        f"YUYV; it offers: {offer}. Set camera.width/height/framerate to one of those."
    )
