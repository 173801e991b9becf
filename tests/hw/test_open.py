"""hw/open.py: choosing a capture source by its configured name."""

from __future__ import annotations

import os
import sys
from fractions import Fraction
from pathlib import Path

import av
import pytest
from av.video.frame import PictureType

from hw.filesrc import FileSource
from hw.open import SOURCE_KINDS, open_source, probe_source
from hw.picamera2src import Picamera2Source
from hw.source import H264Profile, StreamSettings
from hw.testsrc import TestPatternSource
from tests.hw import fake_picamera2

SETTINGS = StreamSettings(width=320, height=240, framerate=30, bitrate=500_000)


def test_testsrc() -> None:
    source = open_source("testsrc", path="", settings=SETTINGS)
    assert isinstance(source, TestPatternSource)
    assert source.settings == SETTINGS


def test_file(tmp_path: Path) -> None:
    path = tmp_path / "clip.h264"
    write_clip(path)
    source = open_source("file", path=str(path), settings=SETTINGS)
    assert isinstance(source, FileSource)
    assert source.path == str(path)
    assert (source.settings.width, source.settings.height) == (160, 120)


def write_clip(path: Path) -> None:
    pattern = av.open("testsrc2=size=160x120:rate=30,format=yuv420p", format="lavfi")
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = 160, 120, "yuv420p"
    encoder.time_base = Fraction(1, 30)
    encoder.options = {"preset": "ultrafast", "tune": "zerolatency"}
    frame = next(pattern.decode(video=0))
    frame.pict_type, frame.pts = PictureType.NONE, 0
    path.write_bytes(b"".join(bytes(p) for p in [*encoder.encode(frame), *encoder.encode(None)]))
    pattern.close()


def test_file_with_a_bad_path_names_it(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"missing\.mp4"):
        open_source("file", path=str(tmp_path / "missing.mp4"), settings=SETTINGS)


def test_picamera2_and_v4l2_open(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_picamera2.install(monkeypatch)
    source = open_source("picamera2", settings=SETTINGS, index=0, profile=H264Profile.MAIN)
    assert isinstance(source, Picamera2Source)
    with pytest.raises(ValueError, match="no H264, MJPG or YUYV mode"):
        open_source("v4l2", path="/dev/null", settings=SETTINGS)


def test_one_list_of_kinds() -> None:
    assert SOURCE_KINDS == ("picamera2", "v4l2", "file", "testsrc")


def test_probe_finds_nothing_wrong_with_testsrc_and_a_good_file(tmp_path: Path) -> None:
    assert probe_source("testsrc", settings=SETTINGS) == []
    path = tmp_path / "clip.h264"
    write_clip(path)
    assert probe_source("file", str(path), settings=SETTINGS) == []


def test_probe_of_a_fifo_names_it_without_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "cam.fifo"
    os.mkfifo(fifo)
    (problem,) = probe_source("file", str(fifo), settings=SETTINGS)
    assert "cam.fifo" in problem and "not a regular file" in problem


def test_probe_picamera2_says_what_to_install_or_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)
    (problem,) = probe_source("picamera2", settings=SETTINGS)
    assert "python3-picamera2" in problem
    world = fake_picamera2.install(monkeypatch)
    assert probe_source("picamera2", settings=SETTINGS) == []
    (problem,) = probe_source("picamera2", settings=SETTINGS, index=1)
    assert "camera.index 1" in problem and "imx708" in problem
    world.cameras.clear()
    (problem,) = probe_source("picamera2", settings=SETTINGS)
    assert "no camera detected" in problem and "rpicam-hello" in problem


def test_probe_v4l2_names_the_device_and_the_fix(tmp_path: Path) -> None:
    (problem,) = probe_source("v4l2", "", settings=SETTINGS)
    assert "camera.path" in problem
    (problem,) = probe_source("v4l2", str(tmp_path / "video7"), settings=SETTINGS)
    assert "video7" in problem and "No such file" in problem
    (problem,) = probe_source("v4l2", "/dev/null", settings=SETTINGS)
    assert "lists no capture formats" in problem
    assert probe_source("webcam", settings=SETTINGS)[0].startswith("unknown camera source")


def test_unknown_kind_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"'webcam'.*testsrc"):
        open_source("webcam", path="", settings=SETTINGS)
