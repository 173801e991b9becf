"""The agent's control names as libcamera controls, for the picamera2 backend.

libcamera advertises what a sensor has (``Picamera2.camera_controls``: name -> (min, max,
default)); only those become ``ControlInfo``s, so HDR appears on sensors with ``HdrMode``
and autofocus on the Camera Module 3. Flips are no libcamera control but the configuration's
``Transform``: changing one reconfigures the camera (``live=False``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hw.controls import ControlInfo, ControlType, ControlValue

_NUMBERS: dict[str, tuple[str, ControlType, str]] = {
    "brightness": ("Brightness", ControlType.FLOAT, ""),
    "contrast": ("Contrast", ControlType.FLOAT, ""),
    "saturation": ("Saturation", ControlType.FLOAT, ""),
    "sharpness": ("Sharpness", ControlType.FLOAT, ""),
    "exposure_time": ("ExposureTime", ControlType.INT, "us"),
    "analogue_gain": ("AnalogueGain", ControlType.FLOAT, ""),
    "lens_position": ("LensPosition", ControlType.FLOAT, "dioptre"),
}
# libcamera's enum values, in order (controls::AeExposureModeEnum, AwbModeEnum, ...).
_ENUMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "exposure_mode": ("AeExposureMode", ("normal", "short", "long", "custom")),
    "awb_mode": (
        "AwbMode",
        ("auto", "incandescent", "tungsten", "fluorescent", "indoor", "daylight", "cloudy"),
    ),
    "af_mode": ("AfMode", ("manual", "auto", "continuous")),
    "hdr": (
        "HdrMode",
        ("off", "multi_exposure_unmerged", "multi_exposure", "single_exposure", "night"),
    ),
}
FLIPS = ("hflip", "vflip")


def _enum_info(options: tuple[str, ...], limits: tuple[Any, Any, Any]) -> ControlInfo | None:
    low, high, default = (int(x) for x in limits)
    offered = options[max(0, low) : min(len(options) - 1, high) + 1]
    if not offered:
        return None
    name = options[default] if 0 <= default < len(options) else offered[0]
    return ControlInfo(ControlType.ENUM, None, None, name, name, offered)


def advertised_controls(
    camera_controls: Mapping[str, tuple[Any, Any, Any]],
) -> dict[str, ControlInfo]:
    """What this sensor offers, in the agent's names, at libcamera's defaults."""
    infos: dict[str, ControlInfo] = {}
    for name, (libcamera_name, kind, unit) in _NUMBERS.items():
        if libcamera_name in camera_controls:
            low, high, default = camera_controls[libcamera_name]
            cast = int if kind is ControlType.INT else float
            value = cast(default) if default is not None else cast(low)
            infos[name] = ControlInfo(kind, cast(low), cast(high), value, value, unit=unit)
    for name, (libcamera_name, options) in _ENUMS.items():
        if libcamera_name in camera_controls:
            info = _enum_info(options, camera_controls[libcamera_name])
            if info is not None:
                infos[name] = info
    for flip in FLIPS:
        infos[flip] = ControlInfo(ControlType.BOOL, None, None, False, False, live=False)
    return infos


def to_libcamera(values: Mapping[str, ControlValue]) -> dict[str, Any]:
    """The libcamera controls for checked values (flips excluded: they are a Transform)."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        if name in _NUMBERS:
            out[_NUMBERS[name][0]] = value
        elif name in _ENUMS:
            libcamera_name, options = _ENUMS[name]
            out[libcamera_name] = options.index(str(value))
    return out
