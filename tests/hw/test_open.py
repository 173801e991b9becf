"""hw/open.py: choosing a capture source by its configured name."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import pytest
from av.video.frame import PictureType

from hw.filesrc import FileSource
from hw.open import open_source
from hw.source import StreamSettings
from hw.testsrc import TestPatternSource

SETTINGS = StreamSettings(width=320, height=240, framerate=30, bitrate=500_000)


def test_testsrc() -> None:
    source = open_source("testsrc", path="", settings=SETTINGS)
    assert isinstance(source, TestPatternSource)
    assert source.settings == SETTINGS


def test_file(tmp_path: Path) -> None:
    path = tmp_path / "clip.h264"
    pattern = av.open("testsrc2=size=160x120:rate=30,format=yuv420p", format="lavfi")
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = 160, 120, "yuv420p"
    encoder.time_base = Fraction(1, 30)
    encoder.options = {"preset": "ultrafast", "tune": "zerolatency"}
    frame = next(pattern.decode(video=0))
    frame.pict_type, frame.pts = PictureType.NONE, 0
    path.write_bytes(b"".join(bytes(p) for p in [*encoder.encode(frame), *encoder.encode(None)]))
    pattern.close()

    source = open_source("file", path=str(path), settings=SETTINGS)
    assert isinstance(source, FileSource)
    assert source.path == str(path)
    assert (source.settings.width, source.settings.height) == (160, 120)


def test_file_with_a_bad_path_names_it(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"missing\.mp4"):
        open_source("file", path=str(tmp_path / "missing.mp4"), settings=SETTINGS)


@pytest.mark.parametrize("kind", ["picamera2", "v4l2"])
def test_cameras_come_in_a_later_release(kind: str) -> None:
    with pytest.raises(ValueError, match=f"{kind}.*later release"):
        open_source(kind, path="", settings=SETTINGS)


def test_unknown_kind_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"'webcam'.*testsrc"):
        open_source("webcam", path="", settings=SETTINGS)
