"""The names of the capture sources, as config ``camera.source`` spells them: the one list,
importable without loading any backend (PyAV, picamera2)."""

from __future__ import annotations

from enum import StrEnum


class SourceKind(StrEnum):
    PICAMERA2 = "picamera2"
    V4L2 = "v4l2"
    FILE = "file"
    TESTSRC = "testsrc"


SOURCE_KINDS: tuple[str, ...] = tuple(kind.value for kind in SourceKind)
