"""H.264 software encoding for browsers: libx264 (or a V4L2 M2M encoder) through PyAV."""

from __future__ import annotations

import logging
import threading
from fractions import Fraction

import av
from av.video.codeccontext import VideoCodecContext

logger = logging.getLogger(__name__)


def open_h264_encoder(
    width: int,
    height: int,
    rate: Fraction,
    bitrate: int,
    keyint: int,
    *,
    codec: str = "libx264",
) -> VideoCodecContext:
    """An open encoder for WebRTC: constrained baseline, no B-frames, closed GOPs of
    ``keyint`` frames with only IDR keyframes, SPS/PPS repeated before every IDR, Annex-B.

    ``codec="h264_v4l2m2m"`` uses a hardware M2M encoder (Pi 0-4's /dev/video11) with the
    same shape; raises av.FFmpegError where that device is absent.
    Frames must have ``pict_type`` NONE, or I to force an IDR.
    """
    ctx = av.CodecContext.create(codec, "w")
    if not isinstance(ctx, VideoCodecContext):
        raise ValueError(f"{codec} is not a video encoder")
    ctx.width = width
    ctx.height = height
    ctx.pix_fmt = "yuv420p"
    ctx.time_base = 1 / rate
    ctx.framerate = rate
    ctx.bit_rate = bitrate
    ctx.gop_size = keyint
    ctx.max_b_frames = 0
    if codec == "libx264":
        ctx.options = {
            # libx264's "baseline" sets constraint_set1: constrained baseline, as WebRTC wants.
            "profile": "baseline",
            "preset": "ultrafast",
            "tune": "zerolatency",
            # frame.pict_type = I then means IDR, not a recovery-point I-frame.
            "forced-idr": "1",
            # libx264 applies bit_rate changes on a running encoder only under VBV, and
            # never above the VBV maxrate: hence a ceiling and a reopen beyond it.
            "maxrate": str(bitrate),
            "bufsize": str(bitrate),
            "x264-params": (
                f"keyint={keyint}:min-keyint={keyint}:scenecut=0:open-gop=0:bframes=0"
                ":repeat-headers=1:annexb=1"
            ),
        }
    else:
        # FFmpeg's v4l2m2m wrapper: profile 'constrained_baseline' is 578 in AVProfile terms.
        ctx.options = {"profile": "constrained_baseline", "repeat_headers": "1"}
    ctx.open()
    logger.info(
        "%s %dx%d@%s %d bps, IDR every %d frames", codec, width, height, rate, bitrate, keyint
    )
    return ctx


class EncoderRequests:
    """Keyframe and bitrate requests made from any thread, taken together by the encoding
    thread before its next frame (so a request is never lost nor applied twice)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keyframe = False
        self._bitrate: int | None = None

    def keyframe(self) -> None:
        with self._lock:
            self._keyframe = True

    def bitrate(self, bitrate: int) -> None:
        with self._lock:
            self._bitrate = bitrate

    def take(self) -> tuple[bool, int | None]:
        """(an IDR was asked for, the newest bitrate asked for), and forget both."""
        with self._lock:
            taken = self._keyframe, self._bitrate
            self._keyframe, self._bitrate = False, None
            return taken
