"""Choosing a capture source by name, as config ``camera.source`` spells it."""

from __future__ import annotations

from hw.filesrc import FileSource
from hw.source import StreamSettings, VideoSource
from hw.testsrc import TestPatternSource

SOURCE_KINDS = ("picamera2", "v4l2", "file", "testsrc")
_LATER = ("picamera2", "v4l2")


def open_source(kind: str, *, path: str, settings: StreamSettings) -> VideoSource:
    """A source of the given kind, not yet started.

    ``path`` is the file to loop for ``file`` (ignored by ``testsrc``). Raises ValueError for
    an unknown kind, for a kind not available in this release, and for a file source whose
    file cannot be played.
    """
    if kind == "testsrc":
        return TestPatternSource(settings)
    if kind == "file":
        return FileSource(path, settings)
    if kind in _LATER:
        raise ValueError(
            f"camera source {kind!r} is not implemented yet: it comes in a later release; "
            "use 'testsrc' or 'file' for now"
        )
    raise ValueError(f"unknown camera source {kind!r}: expected one of {', '.join(SOURCE_KINDS)}")
