"""hw/testsrc.py: the live libx264 test pattern."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator

import av
import pytest
from av.video.frame import VideoFrame

from hw.annexb import NAL_IDR, NAL_PPS, NAL_SPS, nal_type
from hw.frame import EncodedFrame
from hw.source import StreamSettings
from hw.testsrc import ClockOverlay, TestPatternSource

SETTINGS = StreamSettings(width=320, height=240, framerate=30, bitrate=500_000)
GET_TIMEOUT = 10.0


class Collector:
    """A sink recording each frame with the thread that delivered it."""

    def __init__(self, on_frame: Callable[[int, EncodedFrame], None] | None = None) -> None:
        self.frames: list[EncodedFrame] = []
        self.threads: list[threading.Thread] = []
        self.lock = threading.Lock()
        self.queue: queue.Queue[tuple[EncodedFrame, int]] = queue.Queue()
        self.taken = 0
        self._on_frame = on_frame

    def __call__(self, frame: EncodedFrame) -> None:
        with self.lock:
            self.frames.append(frame)
            self.threads.append(threading.current_thread())
            index = len(self.frames) - 1
        if self._on_frame is not None:
            self._on_frame(index, frame)
        self.queue.put((frame, threading.get_ident()))

    def take(self, count: int) -> list[tuple[EncodedFrame, int]]:
        got = [self.queue.get(timeout=GET_TIMEOUT) for _ in range(count)]
        self.taken += count
        return got

    def wait_for(self, count: int) -> list[EncodedFrame]:
        """The first ``count`` frames, once they have all been delivered."""
        if count > self.taken:
            self.take(count - self.taken)
        with self.lock:
            return self.frames[:count]

    def produced(self) -> int:
        with self.lock:
            return len(self.frames)


@pytest.fixture
def running() -> Iterator[Callable[..., tuple[TestPatternSource, Collector]]]:
    sources: list[TestPatternSource] = []

    def start(
        settings: StreamSettings = SETTINGS,
        on_frame: Callable[[int, EncodedFrame], None] | None = None,
    ) -> tuple[TestPatternSource, Collector]:
        source = TestPatternSource(settings)
        collector = Collector(on_frame)
        sources.append(source)
        source.start(collector)
        return source, collector

    yield start
    for source in sources:
        source.stop()


def nal_types(frame: EncodedFrame) -> list[int]:
    return [nal_type(unit) for unit in frame.nal_units]


def sps_of(frame: EncodedFrame) -> bytes:
    return next(u for u in frame.nal_units if nal_type(u) == NAL_SPS)


def assert_constrained_baseline(frame: EncodedFrame) -> None:
    sps = sps_of(frame)
    assert sps[1] == 66, f"profile_idc {sps[1]} is not baseline"
    assert sps[2] & 0x40, f"constraint flags {sps[2]:#04x} lack constraint_set1"
    assert sps[1:3].hex() in ("42c0", "42e0")


def assert_idr_with_parameter_sets(frame: EncodedFrame) -> None:
    types = nal_types(frame)
    assert frame.keyframe
    assert NAL_SPS in types and NAL_PPS in types and NAL_IDR in types, types
    assert types.index(NAL_SPS) < types.index(NAL_IDR)
    assert types.index(NAL_PPS) < types.index(NAL_IDR)


def decode(frames: list[EncodedFrame]) -> list[VideoFrame]:
    decoder = av.CodecContext.create("h264", "r")
    pictures: list[VideoFrame] = []
    for frame in frames:
        pictures.extend(decoder.decode(av.Packet(frame.annexb())))
    pictures.extend(decoder.decode(None))
    return pictures


def test_frames_come_from_the_source_thread_start_on_an_idr_and_decode(running) -> None:
    _source, sink = running()
    got = sink.take(10)
    frames = [frame for frame, _ in got]

    assert all(ident != threading.get_ident() for _, ident in got)
    assert_idr_with_parameter_sets(frames[0])
    assert_constrained_baseline(frames[0])
    assert not any(frame.keyframe for frame in frames[1:])
    assert all(frame.nal_units and all(frame.nal_units) for frame in frames)
    # 30 fps on the 90 kHz clock: 3000 ticks a frame, from the frame index.
    assert [f.pts_90k - frames[0].pts_90k for f in frames] == [3000 * i for i in range(10)]
    pictures = decode(frames)
    assert len(pictures) == 10
    assert all((p.width, p.height) == (320, 240) for p in pictures)


def test_idr_every_two_seconds_of_frames() -> None:
    settings = StreamSettings(width=320, height=240, framerate=15, bitrate=300_000)
    source = TestPatternSource(settings)
    sink = Collector()
    source.start(sink)
    try:
        frames = [frame for frame, _ in sink.take(2 * 15 + 1)]
    finally:
        source.stop()
    keyframes = [i for i, frame in enumerate(frames) if frame.keyframe]
    assert keyframes == [0, 30]
    assert_idr_with_parameter_sets(frames[30])


def test_request_keyframe_from_the_sink_makes_the_next_frame_an_idr() -> None:
    holder: list[TestPatternSource] = []

    def on_frame(index: int, frame: EncodedFrame) -> None:
        if index == 5:
            holder[0].request_keyframe()

    source = TestPatternSource(SETTINGS)
    holder.append(source)
    sink = Collector(on_frame)
    source.start(sink)
    try:
        frames = [frame for frame, _ in sink.take(10)]
    finally:
        source.stop()
    assert [i for i, frame in enumerate(frames) if frame.keyframe] == [0, 6]
    assert_idr_with_parameter_sets(frames[6])
    assert len(decode(frames)) == 10


def test_request_keyframe_from_another_thread_gives_an_idr_within_two_frames(running) -> None:
    source, sink = running()
    sink.take(4)
    before = sink.produced()
    source.request_keyframe()
    after = sink.produced()
    # Frame `after` may be mid-encode and miss the request; frame `after + 1` cannot.
    frames = sink.wait_for(after + 2)
    assert [f.keyframe for f in frames[1:before]] == [False] * (before - 1)
    idrs = [frame for frame in frames[before:] if frame.keyframe]
    assert idrs, "no IDR after request_keyframe()"
    assert_idr_with_parameter_sets(idrs[0])


def test_set_bitrate_keeps_frames_flowing_in_constrained_baseline() -> None:
    holder: list[TestPatternSource] = []

    def on_frame(index: int, frame: EncodedFrame) -> None:
        if index == 5:
            holder[0].set_bitrate(2_000_000)  # above the encoder's ceiling: reopened
        elif index == 10:
            holder[0].set_bitrate(200_000)  # below it: applied live

    source = TestPatternSource(SETTINGS)
    holder.append(source)
    sink = Collector(on_frame)
    source.start(sink)
    try:
        frames = [frame for frame, _ in sink.take(20)]
    finally:
        source.stop()
    assert source.settings.bitrate == 200_000
    # The reopened encoder starts on an IDR; the live change needs none.
    assert [i for i, frame in enumerate(frames) if frame.keyframe] == [0, 6]
    for frame in (frames[0], frames[6]):
        assert_idr_with_parameter_sets(frame)
        assert_constrained_baseline(frame)
    pts = [frame.pts_90k for frame in frames]
    assert pts == sorted(set(pts))
    pictures = decode(frames)
    assert len(pictures) == 20
    assert all((p.width, p.height) == (320, 240) for p in pictures)


def test_stop_joins_the_thread_and_is_idempotent(running) -> None:
    source, sink = running()
    sink.take(2)
    thread = sink.threads[0]
    assert thread.is_alive()
    source.stop()
    assert not thread.is_alive()
    source.stop()


def test_stop_from_inside_the_sink_ends_the_thread() -> None:
    stopped = threading.Event()
    holder: list[TestPatternSource] = []

    def on_frame(index: int, frame: EncodedFrame) -> None:
        if index == 2:
            holder[0].stop()
            stopped.set()

    source = TestPatternSource(SETTINGS)
    holder.append(source)
    sink = Collector(on_frame)
    source.start(sink)
    assert stopped.wait(GET_TIMEOUT)
    thread = sink.threads[0]
    thread.join(GET_TIMEOUT)
    assert not thread.is_alive()
    assert sink.produced() == 3


def test_a_failing_sink_does_not_stop_the_source() -> None:
    delivered: queue.Queue[int] = queue.Queue()

    def sink(frame: EncodedFrame) -> None:
        delivered.put(frame.size)
        raise RuntimeError("consumer bug")

    source = TestPatternSource(SETTINGS)
    source.start(sink)
    try:
        for _ in range(5):
            delivered.get(timeout=GET_TIMEOUT)
    finally:
        source.stop()


def test_start_twice_is_refused(running) -> None:
    source, sink = running()
    with pytest.raises(RuntimeError):
        source.start(sink)


@pytest.mark.parametrize(
    "settings",
    [
        StreamSettings(width=321, height=240, framerate=30, bitrate=500_000),
        StreamSettings(width=320, height=0, framerate=30, bitrate=500_000),
        StreamSettings(width=320, height=240, framerate=0, bitrate=500_000),
        StreamSettings(width=320, height=240, framerate=30, bitrate=10),
    ],
)
def test_bad_settings_are_refused(settings: StreamSettings) -> None:
    with pytest.raises(ValueError):
        TestPatternSource(settings)


def test_set_bitrate_refuses_nonsense() -> None:
    source = TestPatternSource(SETTINGS)
    with pytest.raises(ValueError):
        source.set_bitrate(0)
    assert source.settings.bitrate == SETTINGS.bitrate


def test_clock_overlay_draws_white_segments_on_a_black_box() -> None:
    frame = VideoFrame(320, 240, "yuv420p")
    luma = frame.planes[0]
    grey = bytes([128]) * luma.buffer_size
    luma.update(grey)
    ClockOverlay(320, 240).draw(frame, ["8"])
    data = bytes(luma)
    stride = luma.line_size
    # 320x240 gives 2-pixel units: box from (4, 20), text from (8, 24), "8" 10x18 pixels.
    assert data[20 * stride + 4] == 16  # box corner
    assert data[24 * stride + 8] == 235  # top-left of segment a
    assert data[(24 + 2) * stride + 8 + 4] == 16  # inside the upper loop of the 8
    assert data[(24 + 8) * stride + 8 + 4] == 235  # segment g
    assert data[200 * stride + 200] == 128  # the picture outside the box is untouched
