"""hw/filesrc.py: looping a file's H.264 track without re-encoding.

Every test makes its media with PyAV's libx264 in tmp_path: 12 frames of 320x240 at 60 fps,
an IDR every 6 frames, so one pass lasts 0.2 s.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import pytest
from av.video.frame import PictureType, VideoFrame

from hw import threaded
from hw.annexb import NAL_IDR, NAL_PPS, NAL_SPS, join_nal_units, nal_type, split_nal_units
from hw.filesrc import FileSource, check_regular_file
from hw.frame import EncodedFrame
from hw.source import StreamSettings

FRAMES = 12
RATE = 60
KEYINT = 6
TICKS = 90000 // RATE
SETTINGS = StreamSettings(width=640, height=480, framerate=30, bitrate=1_000_000)
X264 = {
    "preset": "ultrafast",
    "tune": "zerolatency",
    "x264-params": f"keyint={KEYINT}:min-keyint={KEYINT}:scenecut=0:bframes=0",
}
GET_TIMEOUT = 10.0


def pictures(count: int, codec_rate: int = RATE) -> list[VideoFrame]:
    source = av.open(f"testsrc2=size=320x240:rate={codec_rate},format=yuv420p", format="lavfi")
    frames = []
    for index, frame in enumerate(source.decode(video=0)):
        if index == count:
            break
        frame.pict_type = PictureType.NONE  # lavfi marks every frame I: libx264 would obey
        frame.pts = index
        frame.time_base = Fraction(1, codec_rate)
        frames.append(frame)
    source.close()
    return frames


def raw_access_units() -> list[bytes]:
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = 320, 240, "yuv420p"
    encoder.time_base = Fraction(1, RATE)
    encoder.framerate = Fraction(RATE)
    encoder.options = X264
    units = []
    for frame in pictures(FRAMES):
        units.extend(bytes(packet) for packet in encoder.encode(frame))
    units.extend(bytes(packet) for packet in encoder.encode(None))
    return units


def make_raw(path: Path, units: list[bytes] | None = None) -> Path:
    path.write_bytes(b"".join(units if units is not None else raw_access_units()))
    return path


def make_muxed(path: Path, codec: str = "libx264") -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=RATE)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        if codec == "libx264":
            stream.codec_context.options = X264
        for frame in pictures(FRAMES):
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def make_media(tmp_path: Path, ext: str) -> Path:
    path = tmp_path / f"clip.{ext}"
    return make_raw(path) if ext == "h264" else make_muxed(path)


def play(path: Path, count: int) -> tuple[list[EncodedFrame], FileSource, threading.Thread]:
    source = FileSource(str(path), SETTINGS)
    got: queue.Queue[tuple[EncodedFrame, threading.Thread]] = queue.Queue()
    source.start(lambda frame: got.put((frame, threading.current_thread())))
    try:
        items = [got.get(timeout=GET_TIMEOUT) for _ in range(count)]
    finally:
        source.stop()
    return [frame for frame, _ in items], source, items[0][1]


def types_of(frame: EncodedFrame) -> list[int]:
    return [nal_type(unit) for unit in frame.nal_units]


def decode(frames: list[EncodedFrame]) -> list[VideoFrame]:
    decoder = av.CodecContext.create("h264", "r")
    out: list[VideoFrame] = []
    for frame in frames:
        out.extend(decoder.decode(av.Packet(frame.annexb())))
    out.extend(decoder.decode(None))
    return out


@pytest.mark.parametrize("ext", ["h264", "mp4", "mkv", "ts"])
def test_loops_annexb_frames_with_parameter_sets_on_every_idr(tmp_path: Path, ext: str) -> None:
    path = make_media(tmp_path, ext)
    count = 2 * FRAMES + 3
    frames, source, thread = play(path, count)

    assert thread is not threading.current_thread()
    assert not thread.is_alive()
    assert (source.settings.width, source.settings.height) == (320, 240)
    assert source.settings.framerate == RATE
    assert all(frame.nal_units and all(frame.nal_units) for frame in frames)
    assert [i for i, f in enumerate(frames) if f.keyframe] == list(range(0, count, KEYINT))
    for frame in frames:
        types = types_of(frame)
        assert frame.keyframe == (NAL_IDR in types)
        if frame.keyframe:
            assert NAL_SPS in types and NAL_PPS in types, types
            assert types.index(NAL_SPS) < types.index(NAL_IDR)
    # The second pass replays the same bytes, later in time.
    assert [f.nal_units for f in frames[FRAMES : 2 * FRAMES]] == [
        f.nal_units for f in frames[:FRAMES]
    ]
    pts = [frame.pts_90k for frame in frames]
    assert all(a < b for a, b in itertools.pairwise(pts))
    # Matroska keeps milliseconds, so allow its rounding.
    assert abs((pts[FRAMES] - pts[0]) - FRAMES * TICKS) <= 90
    decoded = decode(frames)
    assert len(decoded) == count
    assert all((p.width, p.height) == (320, 240) for p in decoded)


def test_parameter_sets_are_restored_on_idrs_that_lack_them(tmp_path: Path) -> None:
    # Like a camera that sends SPS/PPS only once: strip them from every IDR but the first.
    units = raw_access_units()
    stripped = [units[0]] + [
        join_nal_units(u for u in split_nal_units(au) if nal_type(u) not in (NAL_SPS, NAL_PPS))
        for au in units[1:]
    ]
    assert sum(NAL_SPS in [nal_type(u) for u in split_nal_units(au)] for au in stripped) == 1
    frames, _, _ = play(make_raw(tmp_path / "once.h264", stripped), FRAMES + 1)
    keyframes = [frame for frame in frames if frame.keyframe]
    assert len(keyframes) == 3  # frames 0, 6 and 12 (the second pass)
    for frame in keyframes:
        types = types_of(frame)
        assert NAL_SPS in types and NAL_PPS in types
    assert len(decode(frames)) == FRAMES + 1


def test_a_file_starting_mid_gop_plays_from_its_first_idr(tmp_path: Path) -> None:
    units = raw_access_units()
    frames, _, _ = play(make_raw(tmp_path / "cut.h264", units[2:]), 5)
    assert frames[0].keyframe
    assert frames[0].nal_units == split_nal_units(units[KEYINT])


def test_request_keyframe_and_set_bitrate_are_no_ops(tmp_path: Path, caplog) -> None:
    source = FileSource(str(make_media(tmp_path, "mp4")), SETTINGS)
    with caplog.at_level(logging.INFO, logger="hw.filesrc"):
        source.request_keyframe()
        source.set_bitrate(100_000)
        source.set_bitrate(200_000)
    assert source.settings.bitrate == SETTINGS.bitrate
    assert len([r for r in caplog.records if "bitrate" in r.getMessage()]) == 1


def test_stop_before_start_and_twice(tmp_path: Path) -> None:
    source = FileSource(str(make_media(tmp_path, "h264")), SETTINGS)
    source.stop()
    got: queue.Queue[EncodedFrame] = queue.Queue()
    source.start(got.put)
    got.get(timeout=GET_TIMEOUT)
    source.stop()
    source.stop()


def test_no_frame_reaches_the_sink_once_stop_returns(tmp_path: Path) -> None:
    source = FileSource(str(make_media(tmp_path, "h264")), SETTINGS)
    stop_returned = threading.Event()
    flowing = threading.Semaphore(0)
    late = threading.Event()
    callers: set[threading.Thread] = set()

    def sink(frame: EncodedFrame) -> None:
        callers.add(threading.current_thread())
        if stop_returned.is_set():
            late.set()  # a frame delivered after stop() returned
        flowing.release()
        # A consumer slower than the file's 60 fps, so stop() comes while a frame is in here;
        # it wakes at once when stop() returns, to see whether that happened too soon.
        if stop_returned.wait(0.02):
            late.set()  # the sink was still running when stop() returned

    source.start(sink)
    for _ in range(5):
        assert flowing.acquire(timeout=GET_TIMEOUT), "no frames from the file source"
    stopper = threading.Thread(target=source.stop, daemon=True)
    stopper.start()
    stopper.join(GET_TIMEOUT)
    assert not stopper.is_alive(), f"stop() did not return within {GET_TIMEOUT} s"
    stop_returned.set()
    assert not any(thread.is_alive() for thread in callers)
    # Two and a half passes of the file (75 frame times) without one frame: it stopped.
    assert not late.wait(0.5), "the sink was called after stop() returned"


def test_missing_file_is_a_value_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.mp4"
    with pytest.raises(ValueError, match=r"nowhere\.mp4"):
        FileSource(str(path), SETTINGS)


def test_empty_path_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="empty"):
        FileSource("", SETTINGS)


def test_directory_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=str(tmp_path.name)):
        FileSource(str(tmp_path), SETTINGS)


def test_not_a_media_file_is_a_value_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 50)
    with pytest.raises(ValueError, match=r"notes\.mp4"):
        FileSource(str(path), SETTINGS)


def test_empty_file_is_a_value_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "empty.h264"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.h264"):
        FileSource(str(path), SETTINGS)


def test_non_h264_video_is_a_value_error_naming_the_codec(tmp_path: Path) -> None:
    path = make_muxed(tmp_path / "mpeg4.mkv", codec="mpeg4")
    with pytest.raises(ValueError, match=r"mpeg4\.mkv.*no H\.264.*mpeg4"):
        FileSource(str(path), SETTINGS)


# --- hostile paths (issue 12, break 7) and stop --------------------------------------------


def without_hanging(work: Callable[[], object]) -> object:
    """Run ``work`` so that a hang fails the test instead of freezing the suite."""
    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        return pool.submit(work).result(timeout=GET_TIMEOUT)
    finally:
        pool.shutdown(wait=False)  # a hung worker must not hang the test too


def test_a_fifo_is_refused_by_name_without_being_opened(tmp_path: Path) -> None:
    fifo = tmp_path / "camera.fifo"
    os.mkfifo(fifo)
    # Opening a FIFO for reading blocks until a writer comes: refusing it must not open it.
    with pytest.raises(ValueError, match=r"camera\.fifo.*not a regular file"):
        without_hanging(lambda: FileSource(str(fifo), SETTINGS))
    with pytest.raises(ValueError, match="not a regular file"):
        check_regular_file("/dev/null")


def test_a_stuck_probe_is_given_up_within_its_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()

    def stuck_probe(self: FileSource) -> None:
        release.wait(GET_TIMEOUT)

    monkeypatch.setattr(FileSource, "_probe", stuck_probe)
    path = make_media(tmp_path, "h264")
    try:
        with pytest.raises(ValueError, match=r"clip\.h264.*gave up after 0\.05 s"):
            without_hanging(lambda: FileSource(str(path), SETTINGS, probe_timeout=0.05))
    finally:
        release.set()


def test_a_file_replaced_by_a_fifo_is_reported_by_the_running_source(tmp_path: Path) -> None:
    path = make_media(tmp_path, "h264")
    source = FileSource(str(path), SETTINGS)
    path.unlink()
    os.mkfifo(path)
    errors: queue.Queue[str] = queue.Queue()
    frames: list[EncodedFrame] = []
    source.start(frames.append, errors.put)  # returns at once: the open is on its thread
    reason = errors.get(timeout=GET_TIMEOUT)
    assert "clip.h264" in reason and "not a regular file" in reason
    health = source.health()
    assert health.error == reason and not health.running
    assert not health.stalled(time.monotonic() + 100, 1.0)  # failed, not stalled
    assert frames == []
    source.stop()


class StopWatchingSink:
    """Fails the test if it is called after the test says stop() has returned."""

    def __init__(self, source: FileSource | None = None, stop_after: int | None = None) -> None:
        self.frames: list[EncodedFrame] = []
        self.stopped = False
        self.late: list[EncodedFrame] = []
        self.got_some = threading.Event()
        self._source = source
        self._stop_after = stop_after

    def __call__(self, frame: EncodedFrame) -> None:
        if self.stopped:
            self.late.append(frame)
        self.frames.append(frame)
        if len(self.frames) >= 3:
            self.got_some.set()
        if self._source is not None and len(self.frames) == self._stop_after:
            self._source.stop()  # from the source's own thread, inside the sink


def test_no_frame_reaches_the_sink_after_stop_returns(tmp_path: Path) -> None:
    source = FileSource(str(make_media(tmp_path, "h264")), SETTINGS)
    sink = StopWatchingSink()
    source.start(sink)
    assert sink.got_some.wait(GET_TIMEOUT)
    thread = source._thread
    source.stop()
    sink.stopped = True
    count = len(sink.frames)
    assert thread is not None and not thread.is_alive()  # nothing left that could deliver
    source.stop()  # idempotent
    assert sink.late == [] and len(sink.frames) == count
    assert not source.health().running and source.health().error is None


def test_stop_from_inside_the_sink_ends_the_stream_there(tmp_path: Path) -> None:
    source = FileSource(str(make_media(tmp_path, "h264")), SETTINGS)
    sink = StopWatchingSink(source, stop_after=2)
    source.start(sink)
    thread = source._thread
    assert thread is not None
    thread.join(GET_TIMEOUT)
    assert not thread.is_alive()
    assert len(sink.frames) == 2  # the frame that stopped it was the last one


def test_stop_is_bounded_when_the_sink_is_stuck(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(threaded, "STOP_TIMEOUT", 0.05)
    source = FileSource(str(make_media(tmp_path, "h264")), SETTINGS)
    entered, release = threading.Event(), threading.Event()
    calls: list[EncodedFrame] = []

    def stuck_sink(frame: EncodedFrame) -> None:
        calls.append(frame)
        entered.set()
        release.wait(GET_TIMEOUT)

    source.start(stuck_sink)
    assert entered.wait(GET_TIMEOUT)
    without_hanging(source.stop)  # returns although the sink is still inside its call
    release.set()
    thread = source._thread
    assert thread is not None
    thread.join(GET_TIMEOUT)
    assert not thread.is_alive()
    assert len(calls) == 1  # the call in flight finished; no other started after stop()
