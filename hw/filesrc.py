"""A recorded camera: loops the H.264 track of a file, in real time, without re-encoding.

Accepts raw Annex-B (.h264/.264) and any container FFmpeg demuxes (MP4, MKV, MPEG-TS, ...).
Length-prefixed (AVCC) packets from MP4/MKV become Annex-B through FFmpeg's
``h264_mp4toannexb`` filter, and every IDR is made to carry SPS and PPS inline, so a viewer can
join at any keyframe whatever the file did.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Iterator
from fractions import Fraction

import av
from av.container import InputContainer
from av.video.stream import VideoStream

from hw.annexb import NAL_AUD, NAL_IDR, NAL_PPS, NAL_SPS, nal_type, split_nal_units
from hw.frame import EncodedFrame
from hw.source import FrameSink, StreamSettings
from hw.threaded import ThreadedSource

logger = logging.getLogger(__name__)

_CLOCK = 90000
# How far into a file construction looks for the first IDR before calling it unusable.
_PROBE_PACKETS = 1000
# Behind by more than this (a stalled machine), pacing restarts from now instead of bursting.
_MAX_LAG_S = 1.0
_RAW_EXTENSIONS = (".h264", ".264", ".avc", ".26l")


@dataclasses.dataclass(frozen=True, slots=True)
class _AccessUnit:
    nal_units: tuple[bytes, ...]
    keyframe: bool
    ts_90k: int  # presentation time, from the first delivered unit of the pass
    pace_90k: int  # decode time: when to send it, on the same origin
    duration_90k: int


def _to_90k(value: int, time_base: Fraction) -> int:
    return round(value * time_base * _CLOCK)


class _ParameterSets:
    """The latest SPS and PPS seen, to put in front of an IDR that arrives without them."""

    def __init__(self, extradata: bytes | None) -> None:
        self.sps: bytes | None = None
        self.pps: bytes | None = None
        # Annex-B extradata (TS, raw) holds them directly; avcC extradata is the BSF's business.
        if extradata and (
            extradata.startswith(b"\x00\x00\x01") or extradata.startswith(b"\x00\x00\x00\x01")
        ):
            self.observe(split_nal_units(extradata))

    def observe(self, units: tuple[bytes, ...]) -> None:
        for unit in units:
            if nal_type(unit) == NAL_SPS:
                self.sps = unit
            elif nal_type(unit) == NAL_PPS:
                self.pps = unit

    def complete(self, data: bytes) -> tuple[tuple[bytes, ...], bool]:
        """The access unit's NAL units, SPS/PPS inserted if it is an IDR lacking them; is-IDR."""
        units = split_nal_units(data)
        types = [nal_type(unit) for unit in units]
        self.observe(units)
        if NAL_IDR not in types:
            return units, False
        missing = [
            ps
            for ps, kind in ((self.sps, NAL_SPS), (self.pps, NAL_PPS))
            if ps is not None and kind not in types
        ]
        if not missing:
            return units, True
        # After an access unit delimiter, which must stay first.
        at = 1 if types and types[0] == NAL_AUD else 0
        return (*units[:at], *missing, *units[at:]), True


@dataclasses.dataclass(frozen=True, slots=True)
class _FileInfo:
    width: int
    height: int
    framerate: float


class FileSource(ThreadedSource):
    """Loops a file's H.264 track as if it were a live camera.

    Access units are paced by the file's own timestamps and their ``pts_90k`` keeps growing
    across loops (each pass is offset by the length of the previous ones). The keyframe flag
    marks IDR access units, which always carry SPS/PPS. Files with B-frames play, but browsers
    handle them poorly over WebRTC: prefer files encoded without them.

    Without re-encoding there is no way to make an IDR on demand or to change the bitrate:
    ``request_keyframe()`` is a no-op (the fan-out serves new viewers from its cached GOP start
    and the next IDR of the file comes soon enough) and ``set_bitrate()`` is a no-op that logs
    once. ``settings`` reports the file's real size and frame rate.
    """

    thread_name = "edgecam-filesrc"

    def __init__(self, path: str, settings: StreamSettings) -> None:
        self._path = path
        self._default_rate = Fraction(settings.framerate).limit_denominator(1001)
        if self._default_rate <= 0:
            raise ValueError(f"video file {path!r}: framerate must be positive")
        info = self._probe()
        if (info.width, info.height) != (settings.width, settings.height):
            logger.info(
                "file source %r is %dx%d, not the configured %dx%d: using the file's size",
                path,
                info.width,
                info.height,
                settings.width,
                settings.height,
            )
        self._settings = StreamSettings(
            width=info.width,
            height=info.height,
            framerate=info.framerate,
            bitrate=settings.bitrate,
        )
        super().__init__()
        self._bitrate_logged = False

    @property
    def path(self) -> str:
        """The file being looped."""
        return self._path

    @property
    def settings(self) -> StreamSettings:
        return self._settings

    def request_keyframe(self) -> None:
        """A no-op: a file's IDRs are where the file put them (see the class docstring)."""

    def set_bitrate(self, bitrate: int) -> None:
        """A no-op: a file plays at its own bitrate. Logged the first time only."""
        with self._lock:
            if self._bitrate_logged:
                return
            self._bitrate_logged = True
        logger.info(
            "file source %r cannot change its bitrate (asked for %d bps): ignored",
            self._path,
            bitrate,
        )

    # --- reading the file -------------------------------------------------------------

    def _open(self) -> tuple[InputContainer, VideoStream]:
        """Open the file and find its H.264 track; ValueError naming the path if impossible."""
        path = self._path
        if not path:
            raise ValueError("video file path is empty")
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise ValueError(f"video file {path!r}: {exc.strerror or exc}") from None
        # Raw H.264 has no container clock: without VUI timing in its SPS, FFmpeg would
        # assume 25 fps, so tell it the configured rate instead.
        raw = os.path.splitext(path)[1].lower() in _RAW_EXTENSIONS
        try:
            if raw:
                rate = self._default_rate
                options = {"framerate": f"{rate.numerator}/{rate.denominator}"}
                container = av.open(path, "r", format="h264", options=options)
            else:
                container = av.open(path, "r")
        except (av.FFmpegError, OSError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise ValueError(f"video file {path!r}: not a readable media file ({reason})") from None
        h264 = [s for s in container.streams.video if s.codec_context.name == "h264"]
        if not h264:
            found = (
                ", ".join(f"{s.codec_context.name} {s.type}" for s in container.streams)
                or "no streams"
            )
            container.close()
            raise ValueError(f"video file {path!r}: no H.264 video track (found: {found})")
        return container, h264[0]

    def _probe(self) -> _FileInfo:
        container, stream = self._open()
        try:
            ctx = stream.codec_context
            if ctx.width <= 0 or ctx.height <= 0:
                raise ValueError(f"video file {self._path!r}: H.264 track without a picture size")
            rate = stream.guessed_rate or stream.average_rate or self._default_rate
            # The first unit of a pass is its first IDR, or the pass raises or ends empty.
            if next(self._units(container, stream), None) is None:
                raise ValueError(f"video file {self._path!r}: no H.264 IDR keyframe in the file")
            return _FileInfo(ctx.width, ctx.height, float(rate))
        except (av.FFmpegError, OSError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise ValueError(f"video file {self._path!r}: unreadable ({reason})") from None
        finally:
            container.close()

    def _units(self, container: InputContainer, stream: VideoStream) -> Iterator[_AccessUnit]:
        """One pass over the file: Annex-B access units, starting at the first IDR.

        Times are on the 90 kHz clock from the first unit's decode time. Packets without
        timestamps (raw .h264) are timed by their durations or, lacking those, the frame rate.
        """
        tb = stream.time_base or Fraction(1, _CLOCK)
        rate = stream.guessed_rate or stream.average_rate or self._default_rate
        default_duration = round(_CLOCK / Fraction(rate))
        bsf = av.BitStreamFilterContext("h264_mp4toannexb", in_stream=stream)
        params = _ParameterSets(stream.codec_context.extradata)
        origin: int | None = None
        synthetic = 0  # running decode time for packets that carry none
        skipped = 0

        def convert(packets: list[av.Packet[VideoStream]]) -> Iterator[_AccessUnit]:
            nonlocal origin, synthetic, skipped
            for packet in packets:
                raw = bytes(packet)
                if not raw:
                    continue
                units, idr = params.complete(raw)
                duration = _to_90k(packet.duration, tb) if packet.duration else default_duration
                dts = packet.dts if packet.dts is not None else packet.pts
                pts = packet.pts if packet.pts is not None else packet.dts
                pace = _to_90k(dts, tb) if dts is not None else synthetic
                ts = _to_90k(pts, tb) if pts is not None else synthetic
                synthetic = pace + duration
                if origin is None:
                    if not idr:
                        # A viewer needs an IDR first; so does the next loop.
                        skipped += 1
                        if skipped >= _PROBE_PACKETS:
                            raise ValueError(
                                f"video file {self._path!r}: no IDR keyframe in the first "
                                f"{_PROBE_PACKETS} packets"
                            )
                        continue
                    origin = pace
                yield _AccessUnit(units, idr, ts - origin, pace - origin, duration)

        for packet in container.demux(stream):
            if packet.size == 0:  # the demuxer's end-of-stream marker
                continue
            yield from convert(bsf.filter(packet))
        yield from convert(bsf.filter(None))

    # --- the thread -----------------------------------------------------------------------

    def _run(self, sink: FrameSink, stop: threading.Event) -> None:
        try:
            self._play(sink, stop)
        except Exception:
            logger.exception("file source %r: stopped by an unexpected error", self._path)
        finally:
            logger.info("file source %r: stopped", self._path)

    def _play(self, sink: FrameSink, stop: threading.Event) -> None:
        offset = 0  # 90 kHz time at which the current pass starts
        start = time.monotonic()
        sink_failing = False
        while not stop.is_set():
            try:
                container, stream = self._open()
            except ValueError:
                logger.exception("file source: cannot reopen the file for the next loop")
                return
            end = 0
            try:
                for unit in self._units(container, stream):
                    delay = start + (offset + unit.pace_90k) / _CLOCK - time.monotonic()
                    if delay > 0:
                        if stop.wait(delay):
                            return
                    elif -delay > _MAX_LAG_S:
                        logger.warning("file source: %.1f s late, resuming from now", -delay)
                        start -= delay
                    if stop.is_set():
                        return
                    # The next pass starts after everything this one presented, so pts_90k
                    # keeps growing from loop to loop.
                    end = max(end, max(unit.ts_90k, unit.pace_90k) + unit.duration_90k)
                    frame = EncodedFrame(unit.nal_units, offset + unit.ts_90k, unit.keyframe)
                    try:
                        sink(frame)
                    except Exception:
                        if not sink_failing:
                            logger.exception("file source: the frame sink failed")
                        sink_failing = True
                    else:
                        sink_failing = False
            except av.FFmpegError:
                logger.exception("file source %r: read error, restarting the loop", self._path)
            finally:
                container.close()
            if end <= 0:
                logger.error("file source %r: a pass yielded no frames", self._path)
                return
            offset += end
