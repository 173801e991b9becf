"""A synthetic camera: FFmpeg's moving test pattern with a clock, encoded live by libx264.

It stands in for a real camera in the demo and in tests, and is encoded the way a browser wants
it: constrained baseline, no B-frames, an IDR every 2 s carrying SPS and PPS inline.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from fractions import Fraction

import av
from av.container import InputContainer
from av.video.codeccontext import VideoCodecContext
from av.video.frame import PictureType, VideoFrame

from hw.controls import (
    ControlInfo,
    ControlType,
    ControlValue,
    check_controls,
    with_values,
)
from hw.frame import EncodedFrame
from hw.source import StreamSettings
from hw.threaded import ThreadedSource
from hw.x264 import EncoderRequests, open_h264_encoder

logger = logging.getLogger(__name__)

# Behind by more than this, the source drops frames like a camera would instead of bursting.
_MAX_LAG_S = 0.5
# Consecutive encoder failures after which the source gives up.
_MAX_ENCODE_FAILURES = 3
_MIN_BITRATE = 1000
_MAX_FRAMERATE = 240.0

# FFmpeg's drawtext is not in PyAV's wheels, so the clock is drawn as seven-segment digits.
# Segment rectangles (x0, y0, x1, y1) on a 5 x 9 grid of units.
_SEGMENTS: dict[str, tuple[int, int, int, int]] = {
    "a": (0, 0, 5, 1),
    "b": (4, 0, 5, 5),
    "c": (4, 4, 5, 9),
    "d": (0, 8, 5, 9),
    "e": (0, 4, 1, 9),
    "f": (0, 0, 1, 5),
    "g": (0, 4, 5, 5),
}
_DIGITS = {
    "0": "abcdef",
    "1": "bc",
    "2": "abged",
    "3": "abgcd",
    "4": "fgbc",
    "5": "afgcd",
    "6": "afgedc",
    "7": "abc",
    "8": "abcdefg",
    "9": "abcdfg",
}
_GLYPH_HEIGHT = 9
_GLYPH_GAP = 2
_LINE_GAP = 3
_PADDING = 2
_MARGIN = 2
# testsrc2 prints its own small stream time at the very top-left: keep it visible.
_TOP_CLEARANCE = 16
_WHITE = 235
_BLACK = 16
_NEUTRAL_CHROMA = 128

Glyph = tuple[tuple[bool, ...], ...]

# The controls a test pattern can honour, with ranges like libcamera's where they overlap.
TESTSRC_CONTROLS: dict[str, ControlInfo] = {
    "brightness": ControlInfo(ControlType.FLOAT, -1.0, 1.0, 0.0, 0.0),
    "contrast": ControlInfo(ControlType.FLOAT, 0.0, 4.0, 1.0, 1.0),
    "saturation": ControlInfo(ControlType.FLOAT, 0.0, 4.0, 1.0, 1.0),
    "hflip": ControlInfo(ControlType.BOOL, None, None, False, False),
    "vflip": ControlInfo(ControlType.BOOL, None, None, False, False),
}


def _paint(width: int, rects: list[tuple[int, int, int, int]]) -> Glyph:
    return tuple(
        tuple(any(x0 <= x < x1 and y0 <= y < y1 for x0, y0, x1, y1 in rects) for x in range(width))
        for y in range(_GLYPH_HEIGHT)
    )


def _build_glyphs() -> dict[str, Glyph]:
    glyphs = {ch: _paint(5, [_SEGMENTS[s] for s in segs]) for ch, segs in _DIGITS.items()}
    glyphs[":"] = _paint(1, [(0, 2, 1, 3), (0, 6, 1, 7)])
    glyphs["."] = _paint(1, [(0, 8, 1, 9)])
    glyphs[" "] = _paint(1, [])
    return glyphs


_GLYPHS = _build_glyphs()


class ClockOverlay:
    """Draws lines of digits, ``:`` and ``.`` into a yuv420p frame, white on a black box.

    Pure Python on the frame's planes (no numpy): a text line is nine rows of units, each
    rendered once as bytes and copied ``unit`` times, so a frame costs a few hundred slice
    assignments.
    """

    def __init__(self, width: int, height: int) -> None:
        self._width = width
        self._height = height
        self._unit = max(1, min(height // 90, width // 160))
        self._on = bytes([_WHITE]) * self._unit
        self._off = bytes([_BLACK]) * self._unit

    def _line_rows(self, text: str) -> list[bytes]:
        glyphs = [_GLYPHS[ch] for ch in text if ch in _GLYPHS]
        gap = (False,) * _GLYPH_GAP
        rows = []
        for y in range(_GLYPH_HEIGHT):
            cells: list[bool] = []
            for i, glyph in enumerate(glyphs):
                if i:
                    cells.extend(gap)
                cells.extend(glyph[y])
            rows.append(b"".join(self._on if cell else self._off for cell in cells))
        return rows

    def draw(self, frame: VideoFrame, lines: list[str]) -> None:
        """Draw ``lines`` in the top-left corner of ``frame`` (which must be yuv420p)."""
        u = self._unit
        rendered = [self._line_rows(text) for text in lines]
        text_w = max((len(rows[0]) for rows in rendered), default=0)
        x0 = _MARGIN * u
        y0 = _MARGIN * u + _TOP_CLEARANCE
        x1 = min(self._width, x0 + text_w + 2 * _PADDING * u)
        text_h = len(rendered) * _GLYPH_HEIGHT * u + max(0, len(rendered) - 1) * _LINE_GAP * u
        y1 = min(self._height, y0 + text_h + 2 * _PADDING * u)
        if x1 <= x0 or y1 <= y0:
            return
        frame.make_writable()
        luma, cb, cr = frame.planes[0], frame.planes[1], frame.planes[2]
        self._fill(memoryview(luma), luma.line_size, x0, y0, x1, y1, _BLACK)
        for chroma in (cb, cr):
            self._fill(
                memoryview(chroma),
                chroma.line_size,
                x0 // 2,
                y0 // 2,
                (x1 + 1) // 2,
                (y1 + 1) // 2,
                _NEUTRAL_CHROMA,
            )
        mem = memoryview(luma)
        stride = luma.line_size
        tx = x0 + _PADDING * u
        room = x1 - tx
        ty = y0 + _PADDING * u
        for rows in rendered:
            for row in rows:
                data = row[:room]
                for _ in range(u):
                    if ty >= y1:
                        return
                    start = ty * stride + tx
                    mem[start : start + len(data)] = data
                    ty += 1
            ty += _LINE_GAP * u

    @staticmethod
    def _fill(mem: memoryview, stride: int, x0: int, y0: int, x1: int, y1: int, value: int) -> None:
        row = bytes([value]) * (x1 - x0)
        for y in range(y0, y1):
            start = y * stride + x0
            mem[start : start + len(row)] = row


def clock_lines(index: int, wall: float) -> list[str]:
    """The overlay text: local wall-clock time to the millisecond, then the frame counter."""
    tm = time.localtime(wall)
    millis = int((wall % 1.0) * 1000)
    return [f"{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d}.{millis:03d}", f"{index:06d}"]


def _check_settings(settings: StreamSettings) -> None:
    if settings.width <= 0 or settings.height <= 0 or settings.width % 2 or settings.height % 2:
        raise ValueError(
            f"testsrc: width and height must be positive and even, "
            f"got {settings.width}x{settings.height}"
        )
    if not 0 < settings.framerate <= _MAX_FRAMERATE:
        raise ValueError(
            f"testsrc: framerate must be in (0, {_MAX_FRAMERATE}], got {settings.framerate}"
        )
    _check_bitrate(settings.bitrate)


def _check_bitrate(bitrate: int) -> None:
    if bitrate < _MIN_BITRATE:
        raise ValueError(f"bitrate must be at least {_MIN_BITRATE} bps, got {bitrate}")


class TestPatternSource(ThreadedSource):
    """A moving test pattern with a clock, encoded by libx264 in real time on its own thread.

    Encoding: constrained baseline (SPS 42c0xx), preset ultrafast, tune zerolatency, no
    B-frames, closed GOPs of 2 s with only IDR keyframes, SPS/PPS repeated before every IDR,
    Annex-B output. Bitrate changes that fit under the encoder's VBV ceiling apply live from
    the next frame; raising it beyond that reopens the encoder, so the next frame is an IDR.
    """

    thread_name = "edgecam-testsrc"
    __test__ = False  # not a pytest test class, despite its name

    def __init__(self, settings: StreamSettings) -> None:
        _check_settings(settings)
        super().__init__()
        self._settings = settings
        self._rate = Fraction(settings.framerate).limit_denominator(1001)
        self._keyint = max(1, round(2 * settings.framerate))
        self._requests = EncoderRequests()
        self._control_values: dict[str, ControlValue] = {
            name: info.default for name, info in TESTSRC_CONTROLS.items()
        }
        self._controls_changed = False
        self._pattern: InputContainer | None = None

    def controls(self) -> dict[str, ControlInfo]:
        with self._lock:
            return with_values(TESTSRC_CONTROLS, self._control_values)

    def set_controls(self, values: Mapping[str, object]) -> dict[str, ControlValue]:
        """brightness, contrast, saturation, hflip, vflip: applied live from the next frame."""
        checked = check_controls(values, TESTSRC_CONTROLS)
        with self._lock:
            self._control_values.update(checked)
            self._controls_changed = self._controls_changed or bool(checked)
        return checked

    def _take_controls_changed(self) -> bool:
        with self._lock:
            changed, self._controls_changed = self._controls_changed, False
            return changed

    @property
    def settings(self) -> StreamSettings:
        with self._lock:
            return self._settings

    def request_keyframe(self) -> None:
        self._requests.keyframe()

    def set_bitrate(self, bitrate: int) -> None:
        _check_bitrate(bitrate)
        with self._lock:
            self._requests.bitrate(bitrate)
            self._settings = dataclasses.replace(self._settings, bitrate=bitrate)

    def _open_encoder(self, bitrate: int) -> VideoCodecContext:
        s = self._settings
        return open_h264_encoder(s.width, s.height, self._rate, bitrate, self._keyint)

    def _pts_90k(self, index: int) -> int:
        return index * 90000 * self._rate.denominator // self._rate.numerator

    def _graph(self) -> str:
        s = self._settings
        with self._lock:
            values = dict(self._control_values)
        graph = (
            f"testsrc2=size={s.width}x{s.height}"
            f":rate={self._rate.numerator}/{self._rate.denominator}"
        )
        brightness, contrast = float(values["brightness"]), float(values["contrast"])
        saturation = float(values["saturation"])
        if (brightness, contrast, saturation) != (0.0, 1.0, 1.0):
            # The picture controls as a lookup on the Y'CbCr planes (FFmpeg's eq filter is
            # not in PyAV's wheels): contrast around mid-grey, brightness as an offset.
            offset = brightness * 110
            graph += (
                f",lutyuv=y='clip((val-128)*{contrast:g}+128+{offset:g},16,235)'"
                f":u='clip((val-128)*{saturation:g}+128,16,240)'"
                f":v='clip((val-128)*{saturation:g}+128,16,240)'"
            )
        if values["hflip"]:
            graph += ",hflip"
        if values["vflip"]:
            graph += ",vflip"
        return graph + ",format=yuv420p"

    def _open_pattern(self) -> Iterator[VideoFrame] | None:
        graph = self._graph()
        try:
            pattern = av.open(graph, format="lavfi")
        except av.FFmpegError as exc:
            self._fail(f"cannot open the lavfi test pattern {graph!r}: {exc}")
            return None
        if self._pattern is not None:
            self._pattern.close()
        self._pattern = pattern
        return pattern.decode(video=0)

    def _run(self, stop: threading.Event) -> None:
        frames = self._open_pattern()
        if frames is None:
            return
        try:
            self._produce(frames, stop)
        finally:
            if self._pattern is not None:
                self._pattern.close()
                self._pattern = None
            logger.info("testsrc: stopped")

    def _next_picture(self, frames: Iterator[VideoFrame]) -> VideoFrame | None:
        frame = next(frames, None)
        if frame is None:
            self._fail("the test pattern ended")
        return frame

    def _produce(self, frames: Iterator[VideoFrame], stop: threading.Event) -> None:
        overlay = ClockOverlay(self._settings.width, self._settings.height)
        encoder: VideoCodecContext | None = None
        ceiling = 0
        failures = 0
        period = 1 / self._rate
        start = time.monotonic()
        index = 0
        while not stop.is_set():
            # Deadlines from a fixed origin so that pacing does not drift.
            delay = start + float(index * period) - time.monotonic()
            if delay > 0:
                if stop.wait(delay):
                    break
            elif -delay > _MAX_LAG_S:
                skipped = int(-delay * self._rate)
                logger.warning("testsrc: %d frames late, dropping them", skipped)
                index += skipped
            if self._take_controls_changed():
                reopened = self._open_pattern()  # controls apply from the next frame
                if reopened is None:
                    return
                frames = reopened
            if (frame := self._next_picture(frames)) is None:
                return
            overlay.draw(frame, clock_lines(index, time.time()))
            force_idr, new_bitrate = self._requests.take()
            if encoder is None or (new_bitrate is not None and new_bitrate > ceiling):
                bitrate = new_bitrate or self.settings.bitrate
                try:
                    encoder = self._open_encoder(bitrate)
                except av.FFmpegError as exc:
                    self._fail(f"cannot open libx264: {exc}")
                    return
                ceiling = bitrate
            elif new_bitrate is not None:
                encoder.bit_rate = new_bitrate
                logger.info("testsrc: bitrate %d bps from the next frame", new_bitrate)
            frame.pts = index
            frame.time_base = encoder.time_base
            # Frames from lavfi arrive marked as I, which libx264 would honour as forced IDRs.
            frame.pict_type = PictureType.I if force_idr else PictureType.NONE
            try:
                packets = encoder.encode(frame)
            except av.FFmpegError:
                failures += 1
                logger.exception("testsrc: encoding failed (%d in a row)", failures)
                if failures >= _MAX_ENCODE_FAILURES:
                    self._fail(f"giving up after {failures} encoder failures")
                    return
                encoder = None
                index += 1
                continue
            failures = 0
            for packet in packets:
                pts = packet.pts if packet.pts is not None else index
                out = EncodedFrame.from_annexb(bytes(packet), self._pts_90k(pts))
                if not self._emit(out):
                    return
            index += 1
