"""Camera controls: the names the agent speaks, what each camera offers, and value checks.

One vocabulary for every source (``CONTROL_NAMES``); each backend lists only what its camera
really supports, with ranges (``ControlInfo``), and maps the names to its own controls
(libcamera's ``Brightness``..., V4L2's ``V4L2_CID_BRIGHTNESS``..., lavfi filters for testsrc).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum

ControlValue = bool | int | float | str

CONTROL_NAMES = (
    "brightness",
    "contrast",
    "saturation",
    "sharpness",
    "exposure_mode",
    "exposure_time",
    "analogue_gain",
    "awb_mode",
    "hdr",
    "af_mode",
    "lens_position",
    "hflip",
    "vflip",
)


class ControlType(StrEnum):
    FLOAT = "float"
    INT = "int"
    BOOL = "bool"
    ENUM = "enum"


@dataclass(frozen=True, slots=True)
class ControlInfo:
    """One control of this camera: its type, range (or ``options`` for an enum), values.

    ``live`` is False where applying it restarts the stream (flips on libcamera: the
    transform is part of the camera configuration), so a viewer sees a short gap and an IDR.
    """

    type: ControlType
    min: float | int | None
    max: float | int | None
    default: ControlValue
    value: ControlValue
    options: tuple[str, ...] = ()
    live: bool = True
    unit: str = ""

    def to_json(self) -> dict[str, object]:
        """The PROTOCOL.md ``camera.controls`` entry: type, min, max, default, value, and
        options (enums), live, unit where they say something."""
        out: dict[str, object] = {
            "type": self.type.value,
            "min": self.min,
            "max": self.max,
            "default": self.default,
            "value": self.value,
            "live": self.live,
        }
        if self.options:
            out["options"] = list(self.options)
        if self.unit:
            out["unit"] = self.unit
        return out

    def check(self, name: str, value: object) -> ControlValue:
        """``value`` as this control's type; ValueError naming the control and the value."""
        if self.type is ControlType.BOOL:
            if not isinstance(value, bool):
                raise ValueError(f"control {name!r}: expected true or false, got {value!r}")
            return value
        if self.type is ControlType.ENUM:
            if value not in self.options:
                raise ValueError(
                    f"control {name!r}: {value!r} is not one of {', '.join(self.options)}"
                )
            return str(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"control {name!r}: expected a number, got {value!r}")
        if self.type is ControlType.INT and not float(value).is_integer():
            raise ValueError(f"control {name!r}: expected an integer, got {value!r}")
        number: int | float = int(value) if self.type is ControlType.INT else float(value)
        if (self.min is not None and number < self.min) or (
            self.max is not None and number > self.max
        ):
            raise ValueError(f"control {name!r}: {value!r} outside {self.min}..{self.max}")
        return number


def check_controls(
    wanted: Mapping[str, object], available: Mapping[str, ControlInfo]
) -> dict[str, ControlValue]:
    """Every requested value checked against what this camera offers, or ValueError.

    All or nothing: one bad name or value refuses the whole request, naming it.
    """
    checked: dict[str, ControlValue] = {}
    for name, value in wanted.items():
        info = available.get(name)
        if info is None:
            known = ", ".join(available) or "none"
            why = "unknown control" if name not in CONTROL_NAMES else "not on this camera"
            raise ValueError(f"control {name!r}: {why} (this camera has: {known})")
        checked[name] = info.check(name, value)
    return checked


def with_values(
    available: Mapping[str, ControlInfo], values: Mapping[str, ControlValue]
) -> dict[str, ControlInfo]:
    """``available`` with each ``value`` replaced by the one in ``values`` (if any)."""
    return {
        name: replace(info, value=values[name]) if name in values else info
        for name, info in available.items()
    }
