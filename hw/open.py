"""Choosing a capture source by name, as config ``camera.source`` spells it, and checking it.

``hw.kinds`` has the one list of source names, which the config schema uses too.
"""

from __future__ import annotations

from hw.bounded import run_bounded
from hw.kinds import SOURCE_KINDS, SourceKind
from hw.source import H264Profile, StreamSettings, VideoSource

# Each source's module is imported only when that source is chosen: testsrc, file and v4l2
# need PyAV (~25 MB of RSS), picamera2 does not, so a Pi's agent never loads what it never
# uses.

PROBE_TIMEOUT_S = 10.0


def _kind(kind: str) -> SourceKind:
    try:
        return SourceKind(kind)
    except ValueError:
        raise ValueError(
            f"unknown camera source {kind!r}: expected one of {', '.join(SOURCE_KINDS)}"
        ) from None


def open_source(
    kind: str,
    *,
    path: str = "",
    settings: StreamSettings,
    index: int = 0,
    profile: H264Profile = H264Profile.CONSTRAINED_BASELINE,
    iperiod: int | None = None,
) -> VideoSource:
    """A source of the given kind, not yet started.

    ``path``: the file to loop (``file``) or the device (``v4l2``, e.g. /dev/video0);
    ``index``: which camera on a board with two (``picamera2``); ``profile`` and
    ``iperiod`` (frames between IDRs, default 2 s) for picamera2's hardware encoder.
    Raises ValueError naming the problem (unknown kind, missing package, bad file, a device
    that cannot give these settings). May take up to a few seconds (a file is probed, a
    device listed, each bounded): call it off the event loop.
    """
    chosen = _kind(kind)
    if chosen is SourceKind.TESTSRC:
        from hw.testsrc import TestPatternSource

        return TestPatternSource(settings)
    if chosen is SourceKind.FILE:
        from hw.filesrc import FileSource

        return FileSource(path, settings)
    if chosen is SourceKind.V4L2:
        from hw.v4l2src import V4l2Source

        return V4l2Source(path, settings)
    from hw.picamera2src import Picamera2Source

    return Picamera2Source(settings, index=index, profile=profile, iperiod=iperiod)


def probe_source(
    kind: str, path: str = "", *, settings: StreamSettings, index: int = 0
) -> list[str]:
    """What stops this source from working on this machine, each with what to do; [] if none.

    For ``edgecam check``: nothing is started, nothing blocks longer than PROBE_TIMEOUT_S.
    """
    try:
        chosen = _kind(kind)
    except ValueError as exc:
        return [str(exc)]
    try:
        if chosen is SourceKind.TESTSRC:
            return _probe_testsrc()
        if chosen is SourceKind.FILE:
            from hw.filesrc import FileSource

            run_bounded(lambda: FileSource(path, settings), PROBE_TIMEOUT_S, f"file {path!r}")
            return []
        if chosen is SourceKind.V4L2:
            return _probe_v4l2(path, settings)
        return _probe_picamera2(index)
    except ValueError as exc:
        return [str(exc)]


def _probe_testsrc() -> list[str]:
    import av

    if "libx264" not in av.codecs_available:
        return ["testsrc needs libx264 in PyAV: reinstall the 'av' wheel from PyPI"]
    return []


def _probe_v4l2(path: str, settings: StreamSettings) -> list[str]:
    from hw.v4l2caps import negotiate
    from hw.v4l2src import read_modes

    if not path:
        return ["camera.path must name the V4L2 device for source 'v4l2' (e.g. /dev/video0)"]
    try:
        modes = read_modes(path)
    except ValueError as exc:
        hint = " (add the agent's user to the 'video' group)" if "ermission" in str(exc) else ""
        return [f"{exc}{hint}"]
    if not modes:
        return [f"V4L2 device {path!r} lists no capture formats: is it a camera's capture node?"]
    negotiate(modes, settings.width, settings.height, settings.framerate, path)
    return []


def _probe_picamera2(index: int) -> list[str]:
    from hw.picamera2src import import_picamera2

    picamera2 = import_picamera2()
    cameras = run_bounded(
        picamera2.Picamera2.global_camera_info, PROBE_TIMEOUT_S, "listing libcamera cameras"
    )
    if not cameras:
        return [
            "picamera2: no camera detected: check the ribbon cable and 'rpicam-hello "
            "--list-cameras' (camera_auto_detect=1 in /boot/firmware/config.txt)"
        ]
    if index >= len(cameras):
        found = ", ".join(f"{c.get('Num', i)}: {c.get('Model')}" for i, c in enumerate(cameras))
        return [f"picamera2: no camera at camera.index {index} (cameras found: {found})"]
    return []
