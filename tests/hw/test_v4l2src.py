"""hw/v4l2src.py and hw/v4l2caps.py: device modes, negotiation, passthrough and encoding.

The "devices" are PyAV inputs made in the test (a raw H.264 and an MJPEG stream), opened
through the source's opener with the options a real video4linux2 open would get.
"""

from __future__ import annotations

import contextlib
import queue
import struct
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar

import av
import pytest
from av.video.frame import PictureType

from hw.annexb import NAL_SPS, nal_type, split_nal_units
from hw.frame import EncodedFrame
from hw.source import StreamSettings
from hw.v4l2caps import (
    VIDIOC_ENUM_FMT,
    VIDIOC_ENUM_FRAMEINTERVALS,
    VIDIOC_ENUM_FRAMESIZES,
    DeviceMode,
    check_device,
    list_modes,
    negotiate,
)
from hw.v4l2controls import VIDIOC_G_CTRL, VIDIOC_QUERYCTRL, VIDIOC_S_CTRL, V4l2Controls
from hw.v4l2src import V4l2Source, read_modes

SETTINGS = StreamSettings(width=160, height=120, framerate=30, bitrate=300_000)
FRAMES = 30
TIMEOUT = 10.0
MODES = [
    DeviceMode("MJPG", 160, 120, (30.0, 15.0)),
    DeviceMode("YUYV", 160, 120, (30.0,)),
    DeviceMode("H264", 1920, 1080, (30.0,)),
]


def pictures() -> list[av.VideoFrame]:
    container = av.open("testsrc2=size=160x120:rate=30,format=yuv420p", format="lavfi")
    out = []
    for index, frame in enumerate(container.decode(video=0)):
        if index == FRAMES:
            break
        frame.pict_type, frame.pts, frame.time_base = PictureType.NONE, index, Fraction(1, 30)
        out.append(frame)
    container.close()
    return out


def h264_camera(path: Path) -> list[bytes]:
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = 160, 120, "yuv420p"
    encoder.time_base, encoder.framerate = Fraction(1, 30), Fraction(30)
    encoder.options = {"preset": "ultrafast", "tune": "zerolatency", "x264-params": "keyint=10"}
    units = [bytes(p) for f in pictures() for p in encoder.encode(f)]
    units += [bytes(p) for p in encoder.encode(None)]
    path.write_bytes(b"".join(units))
    return units


def mjpeg_camera(path: Path) -> None:
    with av.open(str(path), "w", format="mjpeg") as container:
        stream = container.add_stream("mjpeg", rate=30)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuvj420p"
        for frame in pictures():
            container.mux(stream.encode(frame.reformat(format="yuvj420p")))
        container.mux(stream.encode(None))


class Device:
    """An opener standing in for av.open(/dev/videoN, format="video4linux2", options)."""

    def __init__(self, media: Path, demuxer: str) -> None:
        self.media, self.demuxer = media, demuxer
        self.opened: list[tuple[str, str, dict[str, str]]] = []

    def __call__(self, path: str, fmt: str, options: dict[str, str]) -> Any:
        self.opened.append((path, fmt, options))
        return av.open(str(self.media), format=self.demuxer)


def run(source: V4l2Source, count: int) -> tuple[list[EncodedFrame], queue.Queue[str]]:
    frames: queue.Queue[EncodedFrame] = queue.Queue()
    errors: queue.Queue[str] = queue.Queue()
    source.start(frames.put, errors.put)
    try:
        return [frames.get(timeout=TIMEOUT) for _ in range(count)], errors
    finally:
        source.stop()


def test_h264_from_the_camera_passes_through_untouched(tmp_path: Path) -> None:
    units = h264_camera(tmp_path / "cam.h264")
    device = Device(tmp_path / "cam.h264", "h264")
    modes = [*MODES, DeviceMode("H264", 160, 120, (30.0, 15.0))]
    source = V4l2Source("/dev/video0", SETTINGS, modes=modes, opener=device)
    frames, _ = run(source, 20)
    assert device.opened == [
        (
            "/dev/video0",
            "video4linux2",
            {"input_format": "h264", "video_size": "160x120", "framerate": "30"},
        )
    ]
    assert [f.nal_units for f in frames] == [split_nal_units(u) for u in units[:20]]
    assert [i for i, f in enumerate(frames) if f.keyframe] == [0, 10]
    assert source.encoder_name is None


def test_mjpeg_is_encoded_for_webrtc_with_libx264_off_a_pi(tmp_path: Path) -> None:
    mjpeg_camera(tmp_path / "cam.mjpeg")
    device = Device(tmp_path / "cam.mjpeg", "mjpeg")
    source = V4l2Source("/dev/video2", SETTINGS, modes=MODES, opener=device)
    frames, _ = run(source, 20)
    assert device.opened[0][2]["input_format"] == "mjpeg"
    # No M2M encoder device on this machine: the fallback did the work.
    assert source.encoder_name == "libx264"
    assert frames[0].keyframe
    sps = next(u for u in frames[0].nal_units if nal_type(u) == NAL_SPS)
    assert (sps[1], sps[2]) == (66, 0xC0)  # constrained baseline
    decoder = av.CodecContext.create("h264", "r")
    decoded = [p for f in frames for p in decoder.decode(av.Packet(f.annexb()))]
    assert len(decoded) >= 19 and (decoded[0].width, decoded[0].height) == (160, 120)


def test_keyframe_requests_reach_the_encode_path(tmp_path: Path) -> None:
    mjpeg_camera(tmp_path / "cam.mjpeg")
    source = V4l2Source(
        "/dev/video2", SETTINGS, modes=MODES, opener=Device(tmp_path / "cam.mjpeg", "mjpeg")
    )
    frames: queue.Queue[EncodedFrame] = queue.Queue()
    source.start(frames.put)
    try:
        got = [frames.get(timeout=TIMEOUT) for _ in range(3)]
        source.request_keyframe()
        got += [frames.get(timeout=TIMEOUT) for _ in range(10)]
    finally:
        source.stop()
    # One IDR at the start, one asked for (the GOP is 60 frames at 30 fps).
    assert sum(f.keyframe for f in got) == 2


def test_an_encoder_that_cannot_open_is_reported_naming_it(tmp_path: Path) -> None:
    mjpeg_camera(tmp_path / "cam.mjpeg")
    source = V4l2Source(
        "/dev/video2",
        SETTINGS,
        modes=MODES,
        opener=Device(tmp_path / "cam.mjpeg", "mjpeg"),
        encoders=("h264_v4l2m2m",),
    )
    errors: queue.Queue[str] = queue.Queue()
    source.start(lambda frame: None, errors.put)
    reason = errors.get(timeout=TIMEOUT)
    source.stop()
    assert "h264_v4l2m2m" in reason


def test_negotiation_prefers_h264_then_mjpeg_then_yuyv() -> None:
    assert negotiate(MODES, 160, 120, 30, "/dev/video0").fourcc == "MJPG"
    assert negotiate(MODES, 160, 120, 15, "/dev/video0").fourcc == "MJPG"
    assert negotiate(MODES[1:], 160, 120, 30, "/dev/video0").fourcc == "YUYV"
    assert negotiate(MODES, 1920, 1080, 30, "/dev/video0").passthrough
    any_rate = [DeviceMode("YUYV", 640, 480, ())]
    assert negotiate(any_rate, 640, 480, 24, "/dev/video0").framerate == 24


def test_negotiation_error_names_what_the_device_offers() -> None:
    modes = [*MODES, DeviceMode("GREY", 160, 120, (30.0,))]
    with pytest.raises(ValueError) as info:
        negotiate(modes, 1280, 720, 30, "/dev/video0")
    message = str(info.value)
    assert "/dev/video0" in message and "1280x720@30" in message
    assert "MJPG 160x120@30/15" in message and "H264 1920x1080@30" in message
    assert "GREY" in message
    with pytest.raises(ValueError, match=r"@60.*YUYV 160x120@30"):
        negotiate(MODES, 160, 120, 60, "/dev/video0")


class FakeDriver:
    """The kernel side of the three enumeration ioctls, for one camera's table."""

    def __init__(self) -> None:
        self.formats = [b"MJPG", b"YUYV"]
        self.sizes = {b"MJPG": [(640, 480), (1280, 720)], b"YUYV": [(640, 480)]}
        self.rates = {(640, 480): [(1, 30), (1, 15)], (1280, 720): [(1, 10)]}

    def __call__(self, request: int, index: int, buf: bytes) -> bytes:
        if request == VIDIOC_ENUM_FMT:
            if index >= len(self.formats):
                raise OSError(22, "Invalid argument")
            code = int.from_bytes(self.formats[index], "little")
            return struct.pack("=III32sII12x", index, 1, 0, b"desc", code, 0)
        if request == VIDIOC_ENUM_FRAMESIZES:
            _, code, _ = struct.unpack_from("=III", buf)
            sizes = self.sizes[code.to_bytes(4, "little")]
            if index >= len(sizes):
                raise OSError(22, "Invalid argument")
            body = struct.pack("=II16x", *sizes[index])
            return struct.pack("=III24s8x", index, code, 1, body)
        if request == VIDIOC_ENUM_FRAMEINTERVALS:
            _, code, width, height = struct.unpack_from("=IIII", buf)
            rates = self.rates[(width, height)]
            if index >= len(rates):
                raise OSError(22, "Invalid argument")
            body = struct.pack("=II16x", *rates[index])
            return struct.pack("=IIIII24s8x", index, code, width, height, 1, body)
        raise OSError(25, "Inappropriate ioctl for device")


def test_modes_are_read_from_the_enumeration_ioctls() -> None:
    assert list_modes(-1, FakeDriver()) == [
        DeviceMode("MJPG", 640, 480, (30.0, 15.0)),
        DeviceMode("MJPG", 1280, 720, (10.0,)),
        DeviceMode("YUYV", 640, 480, (30.0, 15.0)),
    ]


def test_device_checks_by_stat_and_real_ioctls(tmp_path: Path) -> None:
    regular = tmp_path / "video0"
    regular.write_bytes(b"")
    with pytest.raises(ValueError, match="not a character device"):
        check_device(str(regular))
    with pytest.raises(ValueError, match="No such file"):
        read_modes(str(tmp_path / "video9"))
    # /dev/null is a character device that answers V4L2 ioctls with ENOTTY: no modes.
    assert read_modes("/dev/null") == []
    with pytest.raises(ValueError, match="no H264, MJPG or YUYV mode"):
        V4l2Source("/dev/null", SETTINGS)


class FakeControlDriver:
    """The kernel side of QUERYCTRL/G_CTRL/S_CTRL for a UVC camera's few controls."""

    # cid: (type, min, max, default, flags)
    TABLE: ClassVar[dict[int, tuple[int, int, int, int, int]]] = {
        0x00980900: (1, 0, 255, 128, 0),  # brightness
        0x00980914: (2, 0, 1, 0, 0),  # hflip
        0x009A0901: (3, 1, 3, 3, 0),  # exposure auto: manual .. aperture priority
        0x009A0902: (1, 3, 2047, 250, 0),  # exposure absolute, 100 us
        0x00980902: (1, 0, 100, 50, 1),  # saturation, disabled
    }

    def __init__(self) -> None:
        self.values = {cid: row[3] for cid, row in self.TABLE.items()}
        self.set: list[tuple[int, int]] = []

    def __call__(self, request: int, buf: bytes) -> bytes:
        if request == VIDIOC_QUERYCTRL:
            cid = struct.unpack_from("=I", buf)[0]
            if cid not in self.TABLE:
                raise OSError(22, "Invalid argument")
            kind, low, high, default, flags = self.TABLE[cid]
            return struct.pack("=II32siiiiI8x", cid, kind, b"name", low, high, 1, default, flags)
        cid, value = struct.unpack("=Ii", buf)
        if request == VIDIOC_G_CTRL:
            return struct.pack("=Ii", cid, self.values[cid])
        assert request == VIDIOC_S_CTRL
        self.set.append((cid, value))
        self.values[cid] = value
        return buf


def test_v4l2_controls_map_to_the_device_and_apply(tmp_path: Path) -> None:
    driver = FakeControlDriver()

    @contextlib.contextmanager
    def controls(path: str) -> Iterator[V4l2Controls]:
        assert path == "/dev/video2"
        yield V4l2Controls(-1, driver)

    source = V4l2Source("/dev/video2", SETTINGS, modes=MODES, controls=controls)
    offered = source.controls()
    assert set(offered) == {"brightness", "hflip", "exposure_mode", "exposure_time"}
    assert offered["brightness"].max == 255 and offered["brightness"].value == 128
    assert offered["exposure_time"].min == 300 and offered["exposure_time"].unit == "us"
    assert offered["exposure_mode"].options == ("manual", "shutter_priority", "aperture_priority")
    applied = source.set_controls(
        {"brightness": 200, "exposure_mode": "manual", "exposure_time": 10_000}
    )
    assert applied["exposure_mode"] == "manual"
    assert driver.set == [(0x00980900, 200), (0x009A0901, 1), (0x009A0902, 100)]
    with pytest.raises(ValueError, match="'saturation': not on this camera"):
        source.set_controls({"saturation": 10})


def test_a_lower_bitrate_applies_to_libx264_live_without_an_idr(tmp_path: Path) -> None:
    mjpeg_camera(tmp_path / "cam.mjpeg")
    device = Device(tmp_path / "cam.mjpeg", "mjpeg")
    source = V4l2Source("/dev/video2", SETTINGS, modes=MODES, opener=device)
    frames: queue.Queue[EncodedFrame] = queue.Queue()
    source.start(frames.put)
    try:
        got = [frames.get(timeout=TIMEOUT) for _ in range(3)]
        source.set_bitrate(150_000)  # below the bitrate it opened with: live
        got += [frames.get(timeout=TIMEOUT) for _ in range(10)]
    finally:
        source.stop()
    assert source.encoder_name == "libx264" and source.settings.bitrate == 150_000
    assert sum(f.keyframe for f in got) == 1  # the first; the change made none
