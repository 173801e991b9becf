"""The agent's control names as V4L2 controls (VIDIOC_QUERYCTRL / G_CTRL / S_CTRL).

V4L2 controls apply live on the device while it streams; only those the driver reports (and
does not flag disabled) are offered, with the driver's own ranges. UVC exposure is in units
of 100 us: the agent speaks microseconds.
"""

from __future__ import annotations

import fcntl
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from hw.controls import ControlInfo, ControlType, ControlValue, check_controls


def _iowr(nr: int, size: int) -> int:
    return (3 << 30) | (size << 16) | (ord("V") << 8) | nr


_QUERYCTRL = struct.Struct("=II32siiiiI8x")  # struct v4l2_queryctrl, 68 bytes
_CONTROL = struct.Struct("=Ii")  # struct v4l2_control
VIDIOC_QUERYCTRL = _iowr(36, _QUERYCTRL.size)
VIDIOC_G_CTRL = _iowr(27, _CONTROL.size)
VIDIOC_S_CTRL = _iowr(28, _CONTROL.size)
_TYPE_INTEGER, _TYPE_BOOLEAN, _TYPE_MENU = 1, 2, 3
_FLAG_DISABLED = 0x0001

Ioctl = Callable[[int, bytes], bytes]


@dataclass(frozen=True, slots=True)
class _Mapping:
    cid: int
    scale: int = 1  # agent units per V4L2 unit
    options: tuple[str, ...] = ()  # menu/boolean values by index, for enum controls


_CONTROLS = {
    "brightness": _Mapping(0x00980900),
    "contrast": _Mapping(0x00980901),
    "saturation": _Mapping(0x00980902),
    "sharpness": _Mapping(0x0098091B),
    "hflip": _Mapping(0x00980914),
    "vflip": _Mapping(0x00980915),
    "awb_mode": _Mapping(0x0098090C, options=("manual", "auto")),  # AUTO_WHITE_BALANCE
    "exposure_mode": _Mapping(  # EXPOSURE_AUTO: a menu
        0x009A0901, options=("auto", "manual", "shutter_priority", "aperture_priority")
    ),
    "exposure_time": _Mapping(0x009A0902, scale=100),  # EXPOSURE_ABSOLUTE, 100 us units
    "af_mode": _Mapping(0x009A090C, options=("manual", "continuous")),  # FOCUS_AUTO
    "lens_position": _Mapping(0x009A090A),  # FOCUS_ABSOLUTE
}


class V4l2Controls:
    """Controls of one open V4L2 device; ``ioctl(request, buf) -> buf`` defaults to fcntl."""

    def __init__(self, fd: int, ioctl: Ioctl | None = None) -> None:
        self._ioctl = ioctl or (lambda request, buf: bytes(fcntl.ioctl(fd, request, buf)))

    def _query(self, cid: int) -> tuple[int, int, int, int, int] | None:
        try:
            raw = self._ioctl(VIDIOC_QUERYCTRL, _QUERYCTRL.pack(cid, 0, b"", 0, 0, 0, 0, 0))
        except OSError:
            return None  # EINVAL: not on this device
        _, kind, _, low, high, _, default, flags = _QUERYCTRL.unpack(raw)
        if flags & _FLAG_DISABLED:
            return None
        return kind, low, high, default, self._get(cid)

    def _get(self, cid: int) -> int:
        return int(_CONTROL.unpack(self._ioctl(VIDIOC_G_CTRL, _CONTROL.pack(cid, 0)))[1])

    def list(self) -> dict[str, ControlInfo]:
        infos: dict[str, ControlInfo] = {}
        for name, mapping in _CONTROLS.items():
            found = self._query(mapping.cid)
            if found is None:
                continue
            kind, low, high, default, value = found
            if mapping.options:
                offered = mapping.options[max(0, low) : high + 1]
                pick = mapping.options
                infos[name] = ControlInfo(
                    ControlType.ENUM, None, None, pick[default], pick[value], offered
                )
            elif kind == _TYPE_BOOLEAN:
                infos[name] = ControlInfo(ControlType.BOOL, None, None, bool(default), bool(value))
            elif kind in (_TYPE_INTEGER, _TYPE_MENU):
                s = mapping.scale
                infos[name] = ControlInfo(
                    ControlType.INT,
                    low * s,
                    high * s,
                    default * s,
                    value * s,
                    unit="us" if s > 1 else "",
                )
        return infos

    def apply(self, values: Mapping[str, object]) -> dict[str, ControlValue]:
        """Check against what the device offers, then set each; ValueError naming a refusal."""
        checked = check_controls(values, self.list())
        for name, value in checked.items():
            mapping = _CONTROLS[name]
            if mapping.options:
                raw = mapping.options.index(str(value))
            else:
                raw = int(value) // mapping.scale
            try:
                self._ioctl(VIDIOC_S_CTRL, _CONTROL.pack(mapping.cid, raw))
            except OSError as exc:
                raise ValueError(f"control {name!r}: the device refused {value!r}: {exc}") from None
        return checked
