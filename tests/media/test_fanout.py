"""FanOut: packetize once, start viewers on a keyframe, coalesce keyframe requests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from agent.media.fanout import GOP_CACHE_LIMIT_BYTES, STALE_GOP_FRAMES, FanOut
from hw.frame import EncodedFrame

DATA = Path(__file__).parents[1] / "rtc" / "data"
IDR_BYTES = (DATA / "h264_baseline_320x240_idr.h264").read_bytes()
IDR = EncodedFrame.from_annexb(IDR_BYTES, 0, True)


def p_frame(index: int) -> EncodedFrame:
    data = (DATA / "h264_baseline_320x240_p.h264").read_bytes()
    return EncodedFrame.from_annexb(data, index * 3000, False)


def idr(index: int) -> EncodedFrame:
    return EncodedFrame(IDR.nal_units, index * 3000, True)


def big_p_frame(index: int, size: int) -> EncodedFrame:
    """A non-IDR slice access unit of exactly `size` bytes (the packetizer reads no slice)."""
    return EncodedFrame((b"\x41" + b"\x9a" * (size - 1),), index * 3000, False)


class Sink:
    def __init__(self) -> None:
        self.frames: list[tuple[int, Sequence[bytes]]] = []

    def send_frame(self, payloads: Sequence[bytes], pts_90k: int, now: float) -> None:
        self.frames.append((pts_90k, payloads))


class BrokenSink:
    def send_frame(self, payloads: Sequence[bytes], pts_90k: int, now: float) -> None:
        raise OSError("viewer went away")


class Camera:
    def __init__(self) -> None:
        self.requests = 0

    def request_keyframe(self) -> None:
        self.requests += 1


def test_every_sink_gets_the_same_payload_objects_packetized_once() -> None:
    fanout = FanOut(Camera().request_keyframe)
    fanout.push(IDR, 0.0)
    sinks = [Sink(), Sink(), Sink()]
    for sink in sinks:
        fanout.add(sink, 0.0)
    fanout.push(p_frame(1), 0.1)
    live = [sink.frames[-1][1] for sink in sinks]
    assert live[0] is live[1] is live[2]  # one list of payloads shared by every viewer
    assert fanout.sps is not None and fanout.sps.width == 320
    assert fanout.stream_ready.is_set()


def test_a_viewer_joining_without_a_cached_keyframe_waits_and_one_is_requested() -> None:
    camera = Camera()
    fanout = FanOut(camera.request_keyframe)
    sink = Sink()
    fanout.add(sink, 0.0)
    assert camera.requests == 1
    fanout.push(p_frame(1), 0.1)  # not decodable on its own: not sent
    assert sink.frames == []
    fanout.push(EncodedFrame(IDR.nal_units, 6000, True), 0.2)
    fanout.push(p_frame(3), 0.3)
    assert [pts for pts, _ in sink.frames] == [6000, 9000]


def test_a_viewer_joining_mid_gop_gets_the_cached_gop_first() -> None:
    camera = Camera()
    fanout = FanOut(camera.request_keyframe)
    fanout.push(IDR, 0.0)
    for index in range(1, 4):
        fanout.push(p_frame(index), index / 30)
    sink = Sink()
    fanout.add(sink, 0.2)
    assert [pts for pts, _ in sink.frames] == [0, 3000, 6000, 9000]
    assert camera.requests == 0  # a short GOP is cheaper than an IDR for everyone
    fanout.push(p_frame(4), 0.3)
    assert sink.frames[-1][0] == 12000
    assert len(fanout.cached_access_units()) == 5


def test_a_long_cached_gop_also_asks_for_a_fresh_keyframe() -> None:
    camera = Camera()
    fanout = FanOut(camera.request_keyframe)
    fanout.push(IDR, 0.0)
    for index in range(1, STALE_GOP_FRAMES + 2):
        fanout.push(p_frame(index), index / 30)
    fanout.add(Sink(), 1.0)
    assert camera.requests == 1


def test_keyframe_requests_are_coalesced_and_rate_limited() -> None:
    camera = Camera()
    fanout = FanOut(camera.request_keyframe, min_keyframe_interval=1.0)
    fanout.push(IDR, 0.0)
    fanout.request_keyframe(0.0)
    for _ in range(20):  # a PLI storm from many viewers
        fanout.request_keyframe(0.1)
    assert camera.requests == 1
    fanout.push(p_frame(1), 0.5)  # interval not over: still one
    assert camera.requests == 1
    fanout.push(p_frame(2), 1.0)  # over: the remembered request goes out, once
    assert camera.requests == 2
    fanout.push(p_frame(3), 2.5)
    assert camera.requests == 2
    assert fanout.stats.keyframe_requests_coalesced == 19


def test_an_idr_satisfies_a_pending_request() -> None:
    camera = Camera()
    fanout = FanOut(camera.request_keyframe, min_keyframe_interval=1.0)
    fanout.request_keyframe(0.0)
    fanout.request_keyframe(0.5)
    fanout.push(EncodedFrame(IDR.nal_units, 3000, True), 0.6)
    fanout.push(p_frame(2), 1.5)
    assert camera.requests == 1


def test_a_broken_sink_is_removed_and_the_others_keep_every_frame() -> None:
    fanout = FanOut(Camera().request_keyframe)
    fanout.push(IDR, 0.0)
    good, broken = Sink(), BrokenSink()
    fanout.add(good, 0.0)
    fanout.add(broken, 0.0)
    for index in range(1, 5):
        fanout.push(p_frame(index), index / 30)
    assert len(good.frames) == 5
    assert fanout.sink_count == 1
    assert fanout.stats.sink_errors == 1


def test_garbage_access_units_are_dropped_not_raised() -> None:
    fanout = FanOut(Camera().request_keyframe)
    sink = Sink()
    fanout.push(IDR, 0.0)
    fanout.add(sink, 0.0)
    fanout.push(EncodedFrame.from_annexb(b"no start code here", 3000, False), 0.1)
    fanout.push(EncodedFrame((b"\x00\x01",), 4500, False), 0.15)  # NAL type 0: refused
    fanout.push(EncodedFrame.from_annexb(b"\x00\x00\x01\x67\x42", 6000, True), 0.2)  # bad SPS
    assert len(sink.frames) == 2  # the GOP replay, and the 'keyframe' that still packetized
    assert fanout.sps is not None and fanout.sps.width == 320  # the last good SPS stays


def test_a_new_stream_forgets_the_old_sps_and_gop() -> None:
    camera = Camera()
    fanout = FanOut(camera.request_keyframe)
    fanout.push(IDR, 0.0)
    fanout.new_stream()
    assert fanout.sps is None and not fanout.stream_ready.is_set()
    assert fanout.cached_access_units() == []
    sink = Sink()
    fanout.add(sink, 1.0)  # waits for the new stream's first IDR
    assert sink.frames == [] and camera.requests == 1


def test_a_keyframe_with_leading_garbage_is_accepted_and_starts_a_waiting_viewer() -> None:
    # The capture side calls this a keyframe (it holds an IDR after a stray prefix); the
    # fan-out must agree, since it no longer re-parses Annex-B with rules of its own.
    camera = Camera()
    fanout = FanOut(camera.request_keyframe)
    sink = Sink()
    fanout.add(sink, 0.0)
    frame = EncodedFrame.from_annexb(b"\x17\x42 stray prefix" + IDR_BYTES, 0)
    assert frame.keyframe
    fanout.push(frame, 0.1)
    assert len(sink.frames) == 1
    assert fanout.stats.keyframes_in == 1
    assert fanout.sps is not None and fanout.sps.width == 320
    assert fanout.cached_access_units() == [frame.annexb()]


def test_a_new_idr_starts_a_new_cached_gop() -> None:
    camera = Camera()
    fanout = FanOut(camera.request_keyframe)
    fanout.push(IDR, 0.0)
    for index in (1, 2):
        fanout.push(p_frame(index), index / 30)
    fanout.push(idr(3), 0.1)
    fanout.push(p_frame(4), 0.13)
    assert fanout.cached_access_units() == [IDR.annexb(), p_frame(4).annexb()]
    sink = Sink()
    fanout.add(sink, 0.2)
    assert [pts for pts, _ in sink.frames] == [9000, 12000]  # nothing of the old GOP
    assert camera.requests == 0


def test_the_gop_cache_holds_4_mib_then_is_abandoned_until_the_next_idr() -> None:
    camera = Camera()
    fanout = FanOut(camera.request_keyframe)
    room = GOP_CACHE_LIMIT_BYTES - IDR.size
    sizes = [1024 * 1024] * (room // (1024 * 1024)) + [room % (1024 * 1024)]
    # Two GOPs of exactly the limit: every byte of each is kept (the count starts at each IDR).
    for gop in (0, 1):
        start = gop * 10
        fanout.push(idr(start), start / 30)
        for index, size in enumerate(sizes, start=start + 1):
            fanout.push(big_p_frame(index, size), index / 30)
        assert len(fanout.cached_access_units()) == 1 + len(sizes)  # every byte kept
    # One byte more and the whole GOP goes, and stays gone until an IDR: a joining viewer
    # waits for a fresh keyframe rather than getting a GOP with a hole in it.
    fanout.push(big_p_frame(20, 5), 20 / 30)
    fanout.push(p_frame(21), 21 / 30)
    assert fanout.cached_access_units() == []
    sink = Sink()
    fanout.add(sink, 1.0)
    assert sink.frames == [] and camera.requests == 1
    fanout.push(idr(22), 22 / 30)
    fanout.push(p_frame(23), 23 / 30)
    assert len(fanout.cached_access_units()) == 2
    assert [pts for pts, _ in sink.frames] == [66000, 69000]
