"""The unit every capture source produces and the media layer consumes."""

from __future__ import annotations

from dataclasses import dataclass, field

from hw.annexb import contains_idr, join_nal_units, split_nal_units


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """One H.264 access unit, already split into its NAL units (no start codes).

    ``nal_units`` are in decoding order; ``pts_90k`` is the presentation time on the 90 kHz
    RTP clock; ``keyframe`` is true for an IDR access unit, which then carries its SPS and PPS
    inline. ``size`` is the payload size in bytes (the NAL units, without start codes).
    Sources build frames with ``from_annexb`` so the access unit is split exactly once.
    """

    nal_units: tuple[bytes, ...]
    pts_90k: int
    keyframe: bool
    size: int = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", sum(len(unit) for unit in self.nal_units))

    @classmethod
    def from_annexb(cls, data: bytes, pts_90k: int, keyframe: bool | None = None) -> EncodedFrame:
        """Split an Annex-B access unit (the one split); ``keyframe`` defaults to has-an-IDR."""
        units = split_nal_units(data)
        return cls(units, pts_90k, contains_idr(units) if keyframe is None else keyframe)

    def annexb(self) -> bytes:
        """The access unit as an Annex-B buffer (4-byte start codes), for decoders and files.

        Joined on each call: only the snapshot decoder and tests need it, never the live path.
        """
        return join_nal_units(self.nal_units)
