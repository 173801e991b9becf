"""A JPEG of the picture the viewers see now, from the cached group of pictures.

Any source gives H.264, so decoding the cached GOP (last IDR and the frames since) yields the
current picture without touching the camera; picamera2 can do better later (a still from the
`main` stream), but this works for every source. Runs in a worker thread: decoding costs ms.
"""

from __future__ import annotations

import io
from collections.abc import Sequence


def jpeg_from_gop(access_units: Sequence[bytes], quality: int) -> tuple[bytes, int, int]:
    """Decode the access units (Annex-B, starting with an IDR), JPEG-encode the last picture."""
    if not access_units:
        raise ValueError("no keyframe yet: the camera has not produced a picture")
    # Here, not at the top: PyAV costs ~25 MB of RSS and a picamera2 agent needs it only
    # for a snapshot.
    import av

    decoder = av.CodecContext.create("h264", "r")
    picture = None
    for data in access_units:
        for frame in decoder.decode(av.Packet(data)):
            picture = frame
    for frame in decoder.decode(None):
        picture = frame
    if picture is None:
        raise ValueError("the cached pictures did not decode")
    # MJPEG's qscale runs 2 (best) .. 31 (worst); map 1..100 like libjpeg's quality.
    qscale = max(2, min(31, round(31 - (quality - 1) * 29 / 99)))
    out = io.BytesIO()
    with av.open(out, "w", format="mjpeg") as container:
        stream = container.add_stream("mjpeg", rate=1)
        stream.width = picture.width
        stream.height = picture.height
        stream.pix_fmt = "yuvj420p"
        # Pinning the quantiser range gives a constant quality without a rate controller.
        stream.codec_context.options = {"qmin": str(qscale), "qmax": str(qscale)}
        for packet in stream.encode(picture.reformat(format="yuvj420p")):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out.getvalue(), picture.width, picture.height
