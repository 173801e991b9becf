"""Regenerate the h264_* fixtures next to this file from PyAV's libx264.

Run from the repository root: ``.venv/bin/python tests/rtc/data/h264_make_fixtures.py``.
The files are real encoder output (never hand-written bytes); test_h264.py reads them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
from av.video.frame import PictureType

HERE = Path(__file__).parent


def encode(
    width: int,
    height: int,
    frames: int,
    options: dict[str, str],
    pix_fmt: str = "yuv420p",
) -> Iterator[bytes]:
    """Yield Annex-B access units: with no global header libx264 puts start codes in each packet."""
    source = av.open(f"testsrc2=size={width}x{height}:rate=30", format="lavfi")
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, pix_fmt
    ctx.time_base, ctx.framerate = Fraction(1, 30), Fraction(30)
    ctx.options = options
    for count, frame in enumerate(source.decode(video=0), start=1):
        if pix_fmt != frame.format.name:
            frame = frame.reformat(format=pix_fmt)
        # lavfi marks every frame as I, which libx264 would honour as a forced keyframe.
        frame.pict_type = PictureType.NONE
        for packet in ctx.encode(frame):
            yield bytes(packet)
        if count == frames:
            break
    for packet in ctx.encode(None):
        yield bytes(packet)
    source.close()


def first_nal(au: bytes, nal_type: int) -> bytes:
    starts = [m.end() for m in re.finditer(b"\x00\x00\x01", au)]
    for i, start in enumerate(starts):
        if au[start] & 0x1F == nal_type:
            end = starts[i + 1] - 3 if i + 1 < len(starts) else len(au)
            return au[start:end].rstrip(b"\x00")
    raise SystemExit(f"no NAL of type {nal_type}")


def main() -> None:
    base = {"profile": "baseline", "tune": "zerolatency", "preset": "ultrafast"}
    aus = list(encode(320, 240, 3, {**base, "x264-params": "keyint=30:aud=1"}))
    (HERE / "h264_baseline_320x240_idr.h264").write_bytes(aus[0])
    (HERE / "h264_baseline_320x240_p.h264").write_bytes(aus[1])

    # libx264 signals the lowest profile its tools fit: ultrafast uses none beyond baseline,
    # so the high and main streams need a preset that turns on CABAC and 8x8 transforms.
    high = next(encode(320, 240, 1, {**base, "profile": "high", "preset": "veryfast"}))
    (HERE / "h264_high_320x240_sps.bin").write_bytes(first_nal(high, 7))

    full_hd = next(encode(1920, 1080, 1, base))
    (HERE / "h264_baseline_1920x1080_sps.bin").write_bytes(first_nal(full_hd, 7))

    hd = next(encode(1280, 720, 1, {**base, "profile": "main", "preset": "veryfast"}))
    (HERE / "h264_main_1280x720_sps.bin").write_bytes(first_nal(hd, 7))

    # 4:4:4 takes the chroma_format_idc == 3 branch and crops in single luma samples.
    odd = next(encode(318, 237, 1, {**base, "profile": "high444"}, pix_fmt="yuv444p"))
    (HERE / "h264_high444_318x237_sps.bin").write_bytes(first_nal(odd, 7))

    # Field coding doubles the vertical crop unit (1088 coded lines as 544 per field).
    fields = {**base, "profile": "high", "preset": "veryfast", "x264-params": "interlaced=1"}
    interlaced = next(encode(1920, 1080, 1, fields))
    (HERE / "h264_high_1920x1080_interlaced_sps.bin").write_bytes(first_nal(interlaced, 7))


if __name__ == "__main__":
    main()
