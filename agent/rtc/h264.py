"""H.264 bitstream handling for WebRTC: SPS parsing, RFC 6184 payloads.

The camera hands over each access unit already split into NAL units (the capture side splits
Annex-B once; nothing here scans it again). ``packetize`` turns them into RTP payloads once,
for every viewer (packetization-mode 1: single NAL unit, STAP-A and FU-A packets). ``Sps``
reads what the SDP must advertise (``profile-level-id``) and the real picture size.
``Depacketizer`` is the inverse (payloads -> NAL units), for tests and diagnostics.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

logger = logging.getLogger(__name__)

# RTP payloads can never exceed this, and STAP-A length fields are 16 bits.
_MAX_PAYLOAD_LIMIT = 0xFFFF


class NalType(IntEnum):
    """NAL unit types (H.264 table 7-1) and the RFC 6184 packet types this module uses."""

    SLICE = 1
    IDR = 5
    SEI = 6
    SPS = 7
    PPS = 8
    AUD = 9
    STAP_A = 24
    STAP_B = 25
    MTAP16 = 26
    MTAP24 = 27
    FU_A = 28
    FU_B = 29


def _is_plain_nal_type(nal_type: int) -> bool:
    """Types a NAL unit may have inside RTP; 0 and 24-31 are reserved for packet headers."""
    return 1 <= nal_type <= 23


# --------------------------------------------------------------------------------------------
# SPS

# Profiles whose SPS carries chroma format, bit depths and scaling matrices (7.3.2.1.1).
_HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})
# Level 6.2 MaxFS (table A-1): the largest picture any level allows, in macroblocks.
_MAX_FRAME_MBS = 139264


class _BitReader:
    """MSB-first reader over an RBSP; every read past the end raises ValueError."""

    def __init__(self, data: bytes) -> None:
        self._value = int.from_bytes(data, "big")
        self._bits = len(data) * 8
        self._pos = 0

    def u(self, n: int) -> int:
        if self._pos + n > self._bits:
            raise ValueError("SPS truncated")
        self._pos += n
        return (self._value >> (self._bits - self._pos)) & ((1 << n) - 1)

    def flag(self) -> bool:
        return self.u(1) == 1

    def ue(self, limit: int) -> int:
        """Exp-Golomb ue(v), rejected when above ``limit`` (the largest value that makes sense)."""
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("exp-Golomb code longer than 32 bits")
        value = (1 << zeros) - 1 + self.u(zeros)
        if value > limit:
            raise ValueError(f"exp-Golomb value {value} above {limit}")
        return value

    def se(self, limit: int) -> int:
        code = self.ue(2 * limit)
        return (code + 1) // 2 if code & 1 else -(code // 2)


def _unescape(nal: bytes) -> bytes:
    """Remove emulation prevention bytes: 00 00 03 -> 00 00."""
    return nal.replace(b"\x00\x00\x03", b"\x00\x00") if b"\x00\x00\x03" in nal else nal


def _skip_scaling_list(reader: _BitReader, size: int) -> None:
    last = nxt = 8
    for _ in range(size):
        if nxt != 0:
            delta = reader.se(128)
            if delta > 127:
                raise ValueError("delta_scale out of range")
            nxt = (last + delta) % 256
        last = nxt or last


def _high_profile_part(r: _BitReader) -> tuple[int, bool, int, int]:
    """chroma_format_idc, separate_colour_plane, luma and chroma bit depths (the fields
    only High-family profiles carry), skipping their scaling matrices."""
    chroma_format_idc = r.ue(3)
    separate_planes = r.flag() if chroma_format_idc == 3 else False
    depth_luma = 8 + r.ue(6)
    depth_chroma = 8 + r.ue(6)
    r.flag()  # qpprime_y_zero_transform_bypass_flag
    if r.flag():  # seq_scaling_matrix_present_flag
        for i in range(8 if chroma_format_idc != 3 else 12):
            if r.flag():
                _skip_scaling_list(r, 16 if i < 6 else 64)
    return chroma_format_idc, separate_planes, depth_luma, depth_chroma


def _skip_picture_order_count(r: _BitReader) -> None:
    poc_type = r.ue(2)
    if poc_type == 0:
        r.ue(12)  # log2_max_pic_order_cnt_lsb_minus4
    elif poc_type == 1:
        r.flag()  # delta_pic_order_always_zero_flag
        r.se(2**31 - 1)  # offset_for_non_ref_pic
        r.se(2**31 - 1)  # offset_for_top_to_bottom_field
        for _ in range(r.ue(255)):
            r.se(2**31 - 1)  # offset_for_ref_frame


@dataclass(frozen=True, slots=True)
class Sps:
    """The parts of a sequence parameter set (H.264 7.3.2.1.1) that signalling needs.

    ``width``/``height`` are the displayed size, after frame cropping. Parse-only: the agent
    never writes an SPS (the encoder does), so there is no ``serialize``; VUI is not read.
    """

    profile_idc: int
    constraint_flags: int
    level_idc: int
    sps_id: int
    chroma_format_idc: int
    bit_depth_luma: int
    bit_depth_chroma: int
    frame_mbs_only: bool
    width: int
    height: int

    @property
    def profile_level_id(self) -> str:
        """The SDP fmtp ``profile-level-id``: six lowercase hex digits."""
        return f"{self.profile_idc:02x}{self.constraint_flags:02x}{self.level_idc:02x}"

    @classmethod
    def parse(cls, nal: bytes) -> Sps:
        """Parse an SPS NAL unit (header byte included, no start code); ValueError if bad."""
        if len(nal) < 4:
            raise ValueError("SPS truncated")
        if nal[0] & 0x1F != NalType.SPS:
            raise ValueError(f"NAL type {nal[0] & 0x1F} is not an SPS")
        r = _BitReader(_unescape(nal[1:]))
        profile_idc, constraint_flags, level_idc = r.u(8), r.u(8), r.u(8)
        sps_id = r.ue(31)
        chroma_format_idc, separate_planes, depth_luma, depth_chroma = 1, False, 8, 8
        if profile_idc in _HIGH_PROFILES:
            chroma_format_idc, separate_planes, depth_luma, depth_chroma = _high_profile_part(r)
        r.ue(12)  # log2_max_frame_num_minus4
        _skip_picture_order_count(r)
        r.ue(16)  # max_num_ref_frames
        r.flag()  # gaps_in_frame_num_value_allowed_flag
        width_mbs = r.ue(_MAX_FRAME_MBS) + 1
        height_map_units = r.ue(_MAX_FRAME_MBS) + 1
        frame_mbs_only = r.flag()
        height_mbs = height_map_units * (1 if frame_mbs_only else 2)
        if width_mbs * height_mbs > _MAX_FRAME_MBS:
            raise ValueError(f"picture of {width_mbs}x{height_mbs} macroblocks is too large")
        if not frame_mbs_only:
            r.flag()  # mb_adaptive_frame_field_flag
        r.flag()  # direct_8x8_inference_flag
        width, height = width_mbs * 16, height_mbs * 16
        if r.flag():  # frame_cropping_flag
            left, right, top, bottom = (r.ue(width) for _ in range(4))
            if chroma_format_idc == 0 or separate_planes:  # ChromaArrayType 0
                unit_x, unit_y = 1, 1
            else:
                unit_x = 2 if chroma_format_idc in (1, 2) else 1
                unit_y = 2 if chroma_format_idc == 1 else 1
            unit_y *= 1 if frame_mbs_only else 2
            width -= unit_x * (left + right)
            height -= unit_y * (top + bottom)
            if width <= 0 or height <= 0:
                raise ValueError("SPS crops the whole picture away")
        r.flag()  # vui_parameters_present_flag: proves the fields above were all there
        return cls(
            profile_idc=profile_idc,
            constraint_flags=constraint_flags,
            level_idc=level_idc,
            sps_id=sps_id,
            chroma_format_idc=chroma_format_idc,
            bit_depth_luma=depth_luma,
            bit_depth_chroma=depth_chroma,
            frame_mbs_only=frame_mbs_only,
            width=width,
            height=height,
        )


# --------------------------------------------------------------------------------------------
# RFC 6184 packetizer (packetization-mode 1)


def _check_max_payload(max_payload: int) -> None:
    # FU-A needs two header bytes plus at least one byte of the NAL unit.
    if not 3 <= max_payload <= _MAX_PAYLOAD_LIMIT:
        raise ValueError(f"max_payload {max_payload} outside 3..{_MAX_PAYLOAD_LIMIT}")


def _fragment(nal: memoryview, max_payload: int, out: list[bytes]) -> None:
    """FU-A fragments of one NAL unit larger than a packet, appended to ``out``.

    Fragments differ by at most a byte, rather than full ones plus a runt: the same packet
    count, and steadier packet sizes for pacing.
    """
    size, header = len(nal), nal[0]
    body = nal[1:]
    count = -(-(size - 1) // (max_payload - 2))
    chunk, longer = divmod(size - 1, count)
    indicator = (header & 0xE0) | NalType.FU_A
    offset = 0
    for i in range(count):
        end = offset + chunk + (1 if i < longer else 0)
        fu_header = header & 0x1F
        if i == 0:
            fu_header |= 0x80
        if i == count - 1:
            fu_header |= 0x40
        out.append(bytes((indicator, fu_header)) + body[offset:end])
        offset = end


def _packetize_views(nals: Sequence[memoryview], max_payload: int) -> list[bytes]:
    out: list[bytes] = []
    group: list[memoryview] = []
    group_size = 1  # the STAP-A header byte

    def flush() -> None:
        if len(group) == 1:
            out.append(bytes(group[0]))
        elif group:
            f_bits = 0
            nri = 0
            parts: list[bytes | memoryview] = [b""]
            for nal in group:
                f_bits |= nal[0] & 0x80
                nri = max(nri, nal[0] & 0x60)
                parts += (len(nal).to_bytes(2, "big"), nal)
            parts[0] = bytes((f_bits | nri | NalType.STAP_A,))
            out.append(b"".join(parts))
        group.clear()

    for nal in nals:
        size = len(nal)
        if size == 0:
            raise ValueError("empty NAL unit")
        header = nal[0]
        nal_type = header & 0x1F
        if nal_type == NalType.AUD:
            # The RTP marker bit and timestamp already delimit access units, and browsers'
            # depacketizers discard AUDs: sending them only costs bytes (and on the smallest
            # frames a packet).
            continue
        if not _is_plain_nal_type(nal_type):
            raise ValueError(f"NAL type {nal_type} cannot be carried in RTP")
        if size > max_payload:
            flush()
            group_size = 1
            _fragment(nal, max_payload, out)
        elif group and group_size + 2 + size <= max_payload:
            group.append(nal)
            group_size += 2 + size
        else:
            flush()
            group.append(nal)
            group_size = 1 + 2 + size
    flush()
    return out


def packetize(nals: Sequence[bytes], max_payload: int = 1200) -> list[bytes]:
    """RTP payloads (RFC 6184, packetization-mode 1) for one access unit's NAL units.

    Consecutive NAL units that fit together go into one STAP-A (SPS+PPS, SEI and small
    slices), a NAL unit larger than ``max_payload`` is split into FU-A fragments of equal
    size (within a byte), anything else is sent as a single NAL unit packet. AUD NAL units
    are dropped.
    Every payload is at most ``max_payload`` bytes. The caller sets the RTP marker bit on the
    packet carrying the last payload, and gives all of them the access unit's timestamp.
    Raises ValueError for an empty NAL unit, one of type 0 or 24-31, or a bad max_payload.
    """
    _check_max_payload(max_payload)
    return _packetize_views([memoryview(nal) for nal in nals], max_payload)


def starts_keyframe(payloads: Sequence[bytes]) -> bool:
    """Whether packetized payloads carry an IDR slice or an SPS (a decoder can start there).

    For a viewer's pacer, which sees only payloads: it stops at the first slice it meets, so
    a delta frame costs one or two payloads' first bytes. STAP-A aggregates are walked.
    """
    for payload in payloads:
        if not payload:
            continue
        kind = payload[0] & 0x1F
        if kind == NalType.FU_A:
            kind = payload[1] & 0x1F if len(payload) > 1 else 0
        elif kind == NalType.STAP_A:
            kind = _first_decisive_in_stap(payload)
        if kind in (NalType.IDR, NalType.SPS):
            return True
        if kind == NalType.SLICE:
            return False
    return False


def _first_decisive_in_stap(payload: bytes) -> int:
    pos = 1
    while pos + 2 < len(payload):
        size = int.from_bytes(payload[pos : pos + 2])
        kind = payload[pos + 2] & 0x1F
        if kind in (NalType.IDR, NalType.SPS, NalType.SLICE):
            return kind
        pos += 2 + size
    return 0


# --------------------------------------------------------------------------------------------
# Depacketizer


class Depacketizer:
    """Reassemble RTP payloads (RFC 6184, packetization-mode 1) into access units' NAL units.

    Payloads must arrive in order (there is no jitter buffer). An access unit that lost a
    packet is dropped whole rather than handed on damaged: a missing FU-A start or end, a
    sequence number gap (when ``seq`` is given), or a new timestamp before the marker bit.
    ``dropped`` counts access units dropped that way.
    """

    def __init__(self, max_access_unit: int = 8 << 20) -> None:
        self.max_access_unit = max_access_unit
        self.dropped = 0
        self._timestamp: int | None = None
        self._last_seq: int | None = None
        self._nals: list[bytes] = []
        self._size = 0
        self._fu: bytearray | None = None
        self._broken = False

    def feed(
        self, payload: bytes, marker: bool, timestamp: int, seq: int | None = None
    ) -> tuple[bytes, ...] | None:
        """Take one RTP payload; return the NAL units of the access unit the marker completes.

        Returns None while the access unit is incomplete, and also at the marker of an access
        unit that was dropped. Raises ValueError for a malformed payload (reserved or
        interleaved-mode packet types, truncated STAP-A, oversized access unit); the access
        unit it belonged to is dropped.
        """
        if self._timestamp is not None and timestamp != self._timestamp:
            self._drop("timestamp changed before the marker bit")
        self._timestamp = timestamp
        if seq is not None:
            if self._last_seq is not None and seq != (self._last_seq + 1) & 0xFFFF:
                self._broken = True
            self._last_seq = seq
        try:
            self._consume(payload)
        except ValueError:
            self._broken = True
            if marker:
                self._drop("malformed payload")
            raise
        if not marker:
            return None
        if self._fu is not None:
            self._broken = True
        if self._broken or not self._nals:
            self._drop("incomplete access unit")
            return None
        nals = self._nals
        self._reset()
        return tuple(nals)

    def _reset(self) -> None:
        self._timestamp = None
        self._nals = []
        self._size = 0
        self._fu = None
        self._broken = False

    def _drop(self, reason: str) -> None:
        if self._nals or self._fu is not None or self._broken:
            self.dropped += 1
            logger.debug("dropping access unit at timestamp %s: %s", self._timestamp, reason)
        self._reset()

    def _add(self, nal: bytes) -> None:
        if self._broken:
            return
        self._size += len(nal)
        if self._size > self.max_access_unit:
            raise ValueError(f"access unit larger than {self.max_access_unit} bytes")
        self._nals.append(nal)

    def _consume(self, payload: bytes) -> None:
        if not payload:
            raise ValueError("empty RTP payload")
        kind = payload[0] & 0x1F
        if kind != NalType.FU_A and self._fu is not None:
            # The previous FU-A never saw its end fragment.
            self._fu = None
            self._broken = True
        if _is_plain_nal_type(kind):
            self._add(bytes(payload))
        elif kind == NalType.STAP_A:
            self._consume_stap_a(payload)
        elif kind == NalType.FU_A:
            self._consume_fu_a(payload)
        elif kind in (NalType.STAP_B, NalType.MTAP16, NalType.MTAP24, NalType.FU_B):
            raise ValueError(f"packet type {kind} is not allowed in packetization-mode 1")
        else:
            raise ValueError(f"reserved packet type {kind}")

    def _consume_stap_a(self, payload: bytes) -> None:
        pos, end = 1, len(payload)
        if pos == end:
            raise ValueError("STAP-A without NAL units")
        while pos < end:
            if pos + 2 > end:
                raise ValueError("STAP-A truncated in a length field")
            size = int.from_bytes(payload[pos : pos + 2], "big")
            pos += 2
            if size == 0 or pos + size > end:
                raise ValueError(f"STAP-A NAL unit of {size} bytes does not fit")
            nal_type = payload[pos] & 0x1F
            if not _is_plain_nal_type(nal_type):
                raise ValueError(f"NAL type {nal_type} inside STAP-A")
            self._add(bytes(payload[pos : pos + size]))
            pos += size

    def _consume_fu_a(self, payload: bytes) -> None:
        if len(payload) < 2:
            raise ValueError("FU-A without FU header")
        fu_header = payload[1]
        start, end, nal_type = fu_header & 0x80, fu_header & 0x40, fu_header & 0x1F
        if not _is_plain_nal_type(nal_type):
            raise ValueError(f"FU-A carries NAL type {nal_type}")
        if start:
            if self._fu is not None:
                self._broken = True  # the previous fragmented NAL unit lost its end
            self._fu = bytearray(((payload[0] & 0xE0) | nal_type,))
        elif self._fu is None or self._fu[0] & 0x1F != nal_type:
            # A middle or end fragment whose start was lost: nothing to attach it to.
            self._fu = None
            self._broken = True
            return
        self._fu += payload[2:]
        if len(self._fu) > self.max_access_unit:
            raise ValueError(f"FU-A NAL unit larger than {self.max_access_unit} bytes")
        if end:
            nal = bytes(self._fu)
            self._fu = None
            self._add(nal)
