"""Camera controls: hw/controls.py checks, testsrc end to end, picamera2's mapping."""

from __future__ import annotations

import queue

import av
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hw.controls import CONTROL_NAMES, ControlInfo, ControlType, check_controls
from hw.frame import EncodedFrame
from hw.picamera2src import Picamera2Source
from hw.source import StreamSettings
from hw.testsrc import TESTSRC_CONTROLS, TestPatternSource
from tests.hw import fake_picamera2
from tests.hw.fake_picamera2 import FakeWorld

SETTINGS = StreamSettings(width=160, height=120, framerate=30, bitrate=400_000)
TIMEOUT = 10.0


def test_values_are_checked_all_or_nothing_naming_the_culprit() -> None:
    available = dict(TESTSRC_CONTROLS)
    assert check_controls({"brightness": 0.5, "hflip": True}, available) == {
        "brightness": 0.5,
        "hflip": True,
    }
    for bad, message in [
        ({"brightness": 2}, r"'brightness': 2 outside -1\.0\.\.1\.0"),
        ({"hflip": 1}, r"'hflip': expected true or false"),
        ({"brightness": "hi"}, "expected a number"),
        ({"zoom": 1}, r"'zoom': unknown control \(this camera has: brightness"),
        ({"lens_position": 1.0}, "'lens_position': not on this camera"),
    ]:
        with pytest.raises(ValueError, match=message):
            check_controls({"contrast": 1.5, **bad}, available)
    mode = ControlInfo(ControlType.ENUM, None, None, "auto", "auto", ("auto", "daylight"))
    with pytest.raises(ValueError, match="'awb_mode': 'sunny' is not one of auto, daylight"):
        mode.check("awb_mode", "sunny")
    exposure = ControlInfo(ControlType.INT, 1, 100, 10, 10)
    assert exposure.check("exposure_time", 20.0) == 20
    with pytest.raises(ValueError, match="expected an integer"):
        exposure.check("exposure_time", 2.5)


VALUES = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)


@given(st.dictionaries(st.sampled_from([*CONTROL_NAMES, "x"]), VALUES, max_size=4))
def test_checking_arbitrary_requests_only_raises_value_error(wanted: dict[str, object]) -> None:
    try:
        checked = check_controls(wanted, TESTSRC_CONTROLS)
    except ValueError:
        return
    assert set(checked) <= set(TESTSRC_CONTROLS)


def first_picture_luma(source: TestPatternSource, skip: int = 0) -> bytes:
    frames: queue.Queue[EncodedFrame] = queue.Queue()
    source.start(frames.put)
    try:
        decoder = av.CodecContext.create("h264", "r")
        pictures = []
        while len(pictures) <= skip:
            pictures += decoder.decode(av.Packet(frames.get(timeout=TIMEOUT).annexb()))
    finally:
        source.stop()
    plane = pictures[skip].planes[0]
    return b"".join(
        bytes(plane)[row * plane.line_size : row * plane.line_size + 160] for row in range(120)
    )


def mean(data: bytes) -> float:
    return sum(data) / len(data)


def test_testsrc_brightness_and_flips_change_the_picture() -> None:
    plain = first_picture_luma(TestPatternSource(SETTINGS))
    bright = TestPatternSource(SETTINGS)
    assert bright.set_controls({"brightness": 0.6}) == {"brightness": 0.6}
    assert bright.controls()["brightness"].value == 0.6
    assert mean(first_picture_luma(bright)) > mean(plain) + 30
    flipped = TestPatternSource(SETTINGS)
    flipped.set_controls({"hflip": True})
    mirror = first_picture_luma(flipped)
    # Bottom half (away from the clock overlay): each row is the plain row reversed.
    rows = range(70, 120)
    diff_flipped = [
        abs(a - b)
        for r in rows
        for a, b in zip(
            mirror[r * 160 : r * 160 + 160], plain[r * 160 : r * 160 + 160][::-1], strict=True
        )
    ]
    diff_unflipped = [
        abs(a - b)
        for r in rows
        for a, b in zip(
            mirror[r * 160 : r * 160 + 160], plain[r * 160 : r * 160 + 160], strict=True
        )
    ]
    assert mean(bytes(diff_flipped)) < 6 < mean(bytes(diff_unflipped))


def test_testsrc_controls_apply_live_to_a_running_stream() -> None:
    source = TestPatternSource(SETTINGS)
    frames: queue.Queue[EncodedFrame] = queue.Queue()
    source.start(frames.put)
    try:
        decoder = av.CodecContext.create("h264", "r")

        def next_luma() -> float:
            while True:
                for picture in decoder.decode(av.Packet(frames.get(timeout=TIMEOUT).annexb())):
                    return mean(bytes(picture.planes[0]))

        before = next_luma()
        source.set_controls({"brightness": -0.8})
        # Within a few frames (those already encoded), the picture darkens.
        assert any(next_luma() < before - 30 for _ in range(10))
    finally:
        source.stop()


def test_sources_without_controls_refuse_them_by_name(tmp_path: object) -> None:
    source = TestPatternSource(SETTINGS)
    assert "lens_position" not in source.controls()
    with pytest.raises(ValueError, match="lens_position"):
        source.set_controls({"lens_position": 2.0})


# --- picamera2 -------------------------------------------------------------------------------


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> FakeWorld:
    return fake_picamera2.install(monkeypatch)


def test_picamera2_lists_what_the_sensor_advertises(world: FakeWorld) -> None:
    del world.controls["HdrMode"]  # a sensor without HDR
    source = Picamera2Source(SETTINGS)
    frames: queue.Queue[EncodedFrame] = queue.Queue()
    source.start(frames.put)
    try:
        frames.get(timeout=TIMEOUT)
        controls = source.controls()
    finally:
        source.stop()
    assert "hdr" not in controls
    assert controls["brightness"] == ControlInfo(ControlType.FLOAT, -1.0, 1.0, 0.0, 0.0)
    assert controls["awb_mode"].options[:2] == ("auto", "incandescent")
    assert controls["lens_position"].max == 15.0
    assert not controls["hflip"].live and controls["brightness"].live


def test_picamera2_controls_reach_set_controls_as_libcamera_names(world: FakeWorld) -> None:
    source = Picamera2Source(SETTINGS)
    frames: queue.Queue[EncodedFrame] = queue.Queue()
    source.start(frames.put)
    try:
        frames.get(timeout=TIMEOUT)
        applied = source.set_controls(
            {"brightness": 0.25, "awb_mode": "daylight", "af_mode": "manual", "exposure_time": 8000}
        )
        assert applied["awb_mode"] == "daylight"
        assert world.opened[0].controls_set[-1] == {
            "Brightness": 0.25,
            "AwbMode": 5,
            "AfMode": 0,
            "ExposureTime": 8000,
        }
        assert source.controls()["awb_mode"].value == "daylight"
        with pytest.raises(ValueError, match="'contrast': 99"):
            source.set_controls({"contrast": 99, "saturation": 2.0})
        assert len(world.opened[0].controls_set) == 1  # all or nothing
    finally:
        source.stop()


def test_picamera2_flips_reconfigure_the_camera_and_the_stream_goes_on(world: FakeWorld) -> None:
    source = Picamera2Source(SETTINGS)
    frames: queue.Queue[EncodedFrame] = queue.Queue()
    source.start(frames.put)
    try:
        frames.get(timeout=TIMEOUT)
        source.set_controls({"hflip": True, "vflip": True})
        # The restart gives an IDR once the new configuration runs.
        while not (frame := frames.get(timeout=TIMEOUT)).keyframe or len(world.encoders) < 2:
            pass
        transform = world.opened[0].config["transform"]
        assert transform.hflip and transform.vflip
        assert frame.keyframe
    finally:
        source.stop()
