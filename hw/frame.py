"""The unit every capture source produces and the media layer consumes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """One H.264 access unit in Annex-B form (start codes included).

    ``pts_90k`` is the presentation time on the 90 kHz RTP clock; ``keyframe`` is true for an
    IDR access unit, which then carries its SPS and PPS inline.
    """

    data: bytes
    pts_90k: int
    keyframe: bool
