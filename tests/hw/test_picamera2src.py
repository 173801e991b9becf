"""hw/picamera2src.py against tests/hw/fake_picamera2.py (picamera2's API and threading)."""

from __future__ import annotations

import itertools
import queue
import sys
import threading
from collections.abc import Iterator

import av
import pytest

from hw import picamera2src
from hw.annexb import NAL_IDR, NAL_SPS, nal_type
from hw.frame import EncodedFrame
from hw.handoff import EncodedChunk, HandOff
from hw.picamera2src import Picamera2Source
from hw.source import H264Profile, StreamSettings
from tests.hw import fake_picamera2
from tests.hw.fake_picamera2 import FakeWorld, Platform

SETTINGS = StreamSettings(width=160, height=120, framerate=30, bitrate=400_000)
TIMEOUT = 10.0


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> FakeWorld:
    return fake_picamera2.install(monkeypatch)


class Sink:
    """Collects frames with the thread they came on; ``take`` waits for them."""

    def __init__(self) -> None:
        self.queue: queue.Queue[tuple[EncodedFrame, int]] = queue.Queue()

    def __call__(self, frame: EncodedFrame) -> None:
        self.queue.put((frame, threading.get_ident()))

    def take(self, count: int) -> list[EncodedFrame]:
        return [self.queue.get(timeout=TIMEOUT)[0] for _ in range(count)]


@pytest.fixture
def running(world: FakeWorld) -> Iterator[tuple[Picamera2Source, Sink, queue.Queue[str]]]:
    source = Picamera2Source(SETTINGS, iperiod=10)
    sink, errors = Sink(), queue.Queue[str]()
    source.start(sink, errors.put)
    yield source, sink, errors
    source.stop()


def sps_profile(frame: EncodedFrame) -> tuple[int, int]:
    sps = next(u for u in frame.nal_units if nal_type(u) == NAL_SPS)
    return sps[1], sps[2]


def test_without_picamera2_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)
    with pytest.raises(ValueError, match="python3-picamera2"):
        Picamera2Source(SETTINGS)


def test_hardware_encoder_is_configured_for_webrtc(
    running: tuple[Picamera2Source, Sink, queue.Queue[str]], world: FakeWorld
) -> None:
    source, sink, _ = running
    frames = sink.take(12)
    (camera,) = world.opened
    (encoder,) = camera.encoders
    assert type(encoder).__name__ == "H264Encoder"
    assert encoder.profile == "constrained baseline"
    assert encoder.repeat is True and encoder.iperiod == 10
    assert encoder.framerate == 30 and encoder._enable_framerate is True
    assert encoder.bitrate == 400_000
    assert camera.config["main"]["size"] == (160, 120)
    assert frames[0].keyframe
    assert sps_profile(frames[0]) == (66, 0xC0)  # constrained baseline, as Chromium offers
    assert [f.keyframe for f in frames[1:10]] == [False] * 9 and frames[10].keyframe
    assert source.hardware_encoder


def test_a_pi_5_gets_the_libav_encoder_and_main_when_asked(world: FakeWorld) -> None:
    world.platform = Platform.PISP
    source = Picamera2Source(SETTINGS, profile=H264Profile.MAIN)
    sink = Sink()
    source.start(sink)
    try:
        frame = sink.take(1)[0]
    finally:
        source.stop()
    (encoder,) = world.encoders
    assert type(encoder).__name__ == "LibavH264Encoder" and encoder.profile == "main"
    assert sps_profile(frame)[0] == 77


def test_frames_arrive_in_order_on_the_source_thread_with_90k_times(
    running: tuple[Picamera2Source, Sink, queue.Queue[str]], world: FakeWorld
) -> None:
    source, sink, _ = running
    got = [sink.queue.get(timeout=TIMEOUT) for _ in range(15)]
    pts = [frame.pts_90k for frame, _ in got]
    # picamera2's microsecond timestamps, on the 90 kHz clock: 3000 ticks a frame at 30 fps.
    assert [b - a for a, b in itertools.pairwise(pts)] == [3000] * 14
    encoder_thread = world.encoders[0].thread
    assert encoder_thread is not None
    idents = {ident for _, ident in got}
    assert idents == {source._thread.ident} and encoder_thread.ident not in idents
    decoder = av.CodecContext.create("h264", "r")
    pictures = [p for frame, _ in got for p in decoder.decode(av.Packet(frame.annexb()))]
    assert len(pictures) >= 14 and pictures[0].width == 160


def test_keyframe_requests_reach_the_encoder(
    running: tuple[Picamera2Source, Sink, queue.Queue[str]], world: FakeWorld
) -> None:
    source, sink, _ = running
    sink.take(2)
    source.request_keyframe()
    assert world.encoders[0]._key_frames_requested == 1
    frames = sink.take(5)  # the IDR comes long before the GOP's own (every 10 frames)
    assert any(f.keyframe and NAL_IDR in [nal_type(u) for u in f.nal_units] for f in frames)


def test_a_stall_is_reported(world: FakeWorld) -> None:
    source = Picamera2Source(SETTINGS, stall_timeout=0.3)
    sink, errors = Sink(), queue.Queue[str]()
    source.start(sink, errors.put)
    try:
        sink.take(2)
        world.opened[0].stall()
        reason = errors.get(timeout=TIMEOUT)
        assert "stalled" in reason
        assert source.health().error == reason
    finally:
        source.stop()
    assert world.opened[0].closed  # the camera was released for the supervisor's restart


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_an_encoder_exception_is_reported(
    running: tuple[Picamera2Source, Sink, queue.Queue[str]], world: FakeWorld
) -> None:
    source, sink, errors = running
    sink.take(2)
    world.opened[0].fail_encoder(OSError("VIDIOC_DQBUF: No such device"))
    reason = errors.get(timeout=TIMEOUT)
    assert "encoder's thread died" in reason
    assert not source.health().running


def test_a_missing_camera_index_is_reported_naming_what_exists(world: FakeWorld) -> None:
    source = Picamera2Source(SETTINGS, index=1)
    errors: queue.Queue[str] = queue.Queue()
    source.start(Sink(), errors.put)
    reason = errors.get(timeout=TIMEOUT)
    source.stop()
    assert "camera.index 1" in reason and "0: imx708" in reason


def test_second_camera_by_index(world: FakeWorld) -> None:
    world.cameras.append({"Model": "imx219", "Id": "/base/i2c@1/imx219@10"})
    source = Picamera2Source(SETTINGS, index=1)
    sink = Sink()
    source.start(sink)
    try:
        sink.take(1)
    finally:
        source.stop()
    assert world.opened[0].camera_num == 1


def test_bitrate_goes_to_the_running_hardware_encoder_through_v4l2(
    running: tuple[Picamera2Source, Sink, queue.Queue[str]],
    world: FakeWorld,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source, sink, _ = running
    sink.take(1)
    calls: list[tuple[object, int]] = []
    monkeypatch.setattr(picamera2src, "v4l2_set_bitrate", lambda vd, bps: calls.append((vd, bps)))
    source.set_bitrate(250_000)
    assert calls == [(world.encoders[0].vd, 250_000)]
    assert source.settings.bitrate == 250_000
    sink.take(3)
    assert len(world.encoders) == 1  # no restart


def test_bitrate_refused_by_the_kernel_restarts_the_encoder_keeping_time(
    running: tuple[Picamera2Source, Sink, queue.Queue[str]], world: FakeWorld
) -> None:
    source, sink, _ = running
    before = sink.take(3)
    source.set_bitrate(250_000)  # /dev/null answers the ioctl with ENOTTY
    after = sink.take(30)
    assert len(world.encoders) == 2 and world.encoders[1].bitrate == 250_000
    assert not world.encoders[0].running
    pts = [f.pts_90k for f in before + after]
    assert all(a < b for a, b in itertools.pairwise(pts))
    restarted = [f for f in after if f.keyframe]
    assert restarted  # the new encoder starts on an IDR


def test_v4l2_set_bitrate_is_the_real_ioctl() -> None:
    with open("/dev/null", "rb+", buffering=0) as device, pytest.raises(OSError):
        picamera2src.v4l2_set_bitrate(device, 1_000_000)  # ENOTTY: not a V4L2 device
    assert picamera2src.VIDIOC_S_CTRL == 0xC008561C  # linux/videodev2.h


def test_snapshot_from_the_running_camera_without_stopping_the_stream(
    running: tuple[Picamera2Source, Sink, queue.Queue[str]], world: FakeWorld
) -> None:
    source, sink, _ = running
    sink.take(2)
    snapshot = source.snapshot_jpeg(80)
    assert snapshot is not None
    jpeg, width, height = snapshot
    assert jpeg.startswith(b"\xff\xd8") and (width, height) == (160, 120)
    assert world.opened[0].options["quality"] == 80
    sink.take(3)  # still streaming
    assert world.encoders[0].running


def test_a_full_hand_off_drops_the_oldest_non_keyframe_and_counts_it() -> None:
    handoff = HandOff(3)
    chunks = [EncodedChunk(bytes([i]), i == 0, i) for i in range(5)]
    dropped = [handoff.put(chunk) for chunk in chunks]
    assert dropped == [0, 0, 0, 1, 1] and handoff.dropped == 2
    kept = [handoff.get(0) for _ in range(3)]
    assert [c.timestamp_us for c in kept if c] == [0, 3, 4]  # the keyframe survived
    assert handoff.get(0) is None
    keys = HandOff(2)
    for i in range(3):
        keys.put(EncodedChunk(bytes([i]), True, i))
    assert [c.timestamp_us for c in (keys.get(0), keys.get(0)) if c] == [1, 2]


def test_a_slow_consumer_costs_drops_not_a_blocked_encoder(world: FakeWorld) -> None:
    source = Picamera2Source(SETTINGS, queue_frames=2)
    release, blocked = threading.Event(), threading.Event()

    def slow_sink(frame: EncodedFrame) -> None:
        blocked.set()
        release.wait(TIMEOUT)

    source.start(slow_sink)
    try:
        assert blocked.wait(TIMEOUT)
        encoder = world.encoders[0]
        # The encoder keeps producing while the consumer is stuck: it never blocks.
        assert encoder.wait_for_output(encoder.frames_output + 6, TIMEOUT)
        assert source.health().dropped >= 3
    finally:
        release.set()
        source.stop()


def test_stop_is_final_and_releases_the_camera(
    running: tuple[Picamera2Source, Sink, queue.Queue[str]], world: FakeWorld
) -> None:
    source, sink, _ = running
    sink.take(2)
    source.stop()
    source.stop()
    (camera,) = world.opened
    assert camera.closed and not camera.started and not world.encoders[0].running
    assert not source.health().running
