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
import stat
import threading
import time
from collections.abc import Iterator
from fractions import Fraction

import av
from av.container import InputContainer
from av.video.stream import VideoStream

from hw.annexb import ParameterSetCache
from hw.bounded import run_bounded
from hw.frame import EncodedFrame
from hw.source import StreamSettings
from hw.threaded import ThreadedSource

logger = logging.getLogger(__name__)

_CLOCK = 90000
# How far into a file construction looks for the first IDR before calling it unusable.
_PROBE_PACKETS = 1000
# Behind by more than this (a stalled machine), pacing restarts from now instead of bursting.
_MAX_LAG_S = 1.0
_RAW_EXTENSIONS = (".h264", ".264", ".avc", ".26l")
# Probing reads at most _PROBE_PACKETS packets of a regular file: far under this on any
# machine, so a probe that takes longer is stuck (a network mount, say) and is given up.
PROBE_TIMEOUT_S = 10.0


def check_regular_file(path: str) -> None:
    """ValueError naming ``path`` unless it is a readable regular file.

    Decided by ``stat`` alone: a FIFO, socket or device is refused without being opened (a
    FIFO's open blocks until a writer appears, a device's open may start hardware).
    """
    if not path:
        raise ValueError("video file path is empty")
    try:
        info = os.stat(path)
    except OSError as exc:
        raise ValueError(f"video file {path!r}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise ValueError(f"video file {path!r}: {kind} (FIFOs and devices are refused)")
    if not os.access(path, os.R_OK):
        raise ValueError(f"video file {path!r}: not readable by this user")


@dataclasses.dataclass(frozen=True, slots=True)
class _AccessUnit:
    nal_units: tuple[bytes, ...]
    keyframe: bool
    ts_90k: int  # presentation time, from the first delivered unit of the pass
    pace_90k: int  # decode time: when to send it, on the same origin
    duration_90k: int


def _to_90k(value: int, time_base: Fraction) -> int:
    return round(value * time_base * _CLOCK)


@dataclasses.dataclass(slots=True)
class _Pacing:
    """Real-time pacing across passes: the wall origin, the pass offset, its length so far."""

    start: float  # time.monotonic() of 90 kHz time 0
    offset: int = 0  # 90 kHz time at which the current pass starts
    end: int = 0  # 90 kHz length of the current pass so far


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

    def __init__(
        self, path: str, settings: StreamSettings, *, probe_timeout: float = PROBE_TIMEOUT_S
    ) -> None:
        self._path = path
        self._default_rate = Fraction(settings.framerate).limit_denominator(1001)
        if self._default_rate <= 0:
            raise ValueError(f"video file {path!r}: framerate must be positive")
        check_regular_file(path)
        info = run_bounded(self._probe, probe_timeout, f"video file {path!r}: probing")
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
        # Again on every loop: the path may have been replaced by a FIFO since the probe.
        check_regular_file(path)
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
        params = ParameterSetCache(stream.codec_context.extradata)
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

    def _run(self, stop: threading.Event) -> None:
        try:
            self._play(stop)
        finally:
            logger.info("file source %r: stopped", self._path)

    def _play(self, stop: threading.Event) -> None:
        pacing = _Pacing(start=time.monotonic())
        while not stop.is_set():
            try:
                container, stream = self._open()
            except ValueError as exc:
                self._fail(f"cannot reopen the file for the next loop: {exc}")
                return
            pacing.end = 0
            try:
                if not self._play_pass(container, stream, pacing, stop):
                    return
            except av.FFmpegError:
                logger.exception("file source %r: read error, restarting the loop", self._path)
            finally:
                container.close()
            if pacing.end <= 0:
                self._fail(f"file {self._path!r}: a pass yielded no frames")
                return
            pacing.offset += pacing.end

    def _play_pass(
        self,
        container: InputContainer,
        stream: VideoStream,
        pacing: _Pacing,
        stop: threading.Event,
    ) -> bool:
        """One pass in real time, extending ``pacing.end``; False when told to stop."""
        for unit in self._units(container, stream):
            delay = pacing.start + (pacing.offset + unit.pace_90k) / _CLOCK - time.monotonic()
            if delay > 0:
                if stop.wait(delay):
                    return False
            elif -delay > _MAX_LAG_S:
                logger.warning("file source: %.1f s late, resuming from now", -delay)
                pacing.start -= delay
            # The next pass starts after everything this one presented, so pts_90k keeps
            # growing from loop to loop.
            pacing.end = max(pacing.end, max(unit.ts_90k, unit.pace_90k) + unit.duration_90k)
            frame = EncodedFrame(unit.nal_units, pacing.offset + unit.ts_90k, unit.keyframe)
            if stop.is_set() or not self._emit(frame):
                return False
        return True
