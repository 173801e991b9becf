"""H.264 in SDP: profile-level-id interpretation and the offered H.264 formats (RFC 6184 8.1).

WebRTC peers match H.264 payload types by *profile* (profile_idc plus the constraint flags in
profile-iop), never by the exact three bytes, and let the level differ when
level-asymmetry-allowed=1. The profile table is the one libwebrtc uses
(api/video_codecs/h264_profile_level_id.cc), so that we and Chromium agree on which offered
payload type carries the profile our encoder really produces.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

__all__ = [
    "DEFAULT_PROFILE_LEVEL_ID",
    "Codec",
    "H264Format",
    "answer_format",
    "choose_format",
    "fmtp",
    "h264_format",
    "h264_formats",
    "h264_profile",
    "profile_display_name",
    "profile_level_id_level",
]

# RFC 6184 says a missing profile-level-id means 42000a (baseline, level 1), but every
# browser follows libwebrtc, which treats it as constrained baseline level 3.1; we do the same
# so that a bare "packetization-mode=1" fmtp from a browser matches a constrained-baseline
# stream as it would between two browsers.
DEFAULT_PROFILE_LEVEL_ID = "42e01f"

_HEX6 = re.compile(r"[0-9a-fA-F]{6}")


def _bit_pattern(pattern: str) -> tuple[int, int]:
    """(mask, value) of an 8-character pattern of '0', '1' and 'x' (don't care), MSB first."""
    mask = value = 0
    for char in pattern:
        mask <<= 1
        value <<= 1
        if char != "x":
            mask |= 1
            value |= char == "1"
    return mask, value


# First match wins; the order matters (0x4d with constraint_set0 is constrained baseline,
# not main). Extended profile (0x58 with 00xx0000) is deliberately absent, as in libwebrtc.
_PROFILE_PATTERNS: tuple[tuple[int, tuple[int, int], str], ...] = (
    (0x42, _bit_pattern("x1xx0000"), "constrained-baseline"),
    (0x4D, _bit_pattern("1xxx0000"), "constrained-baseline"),
    (0x58, _bit_pattern("11xx0000"), "constrained-baseline"),
    (0x42, _bit_pattern("x0xx0000"), "baseline"),
    (0x58, _bit_pattern("10xx0000"), "baseline"),
    (0x4D, _bit_pattern("0x0x0000"), "main"),
    (0x64, _bit_pattern("00000000"), "high"),
    (0x64, _bit_pattern("00001100"), "constrained-high"),
    (0xF4, _bit_pattern("00000000"), "predictive-high-444"),
)


def _split(profile_level_id: str) -> tuple[int, int, int]:
    if not isinstance(profile_level_id, str) or not _HEX6.fullmatch(profile_level_id):
        raise ValueError(f"profile-level-id {profile_level_id!r} is not 6 hex digits")
    value = int(profile_level_id, 16)
    if value == 0:
        raise ValueError("profile-level-id 000000 names no profile")
    return value >> 16, (value >> 8) & 0xFF, value & 0xFF


def h264_profile(profile_level_id: str) -> str:
    """Name of the profile in a profile-level-id, e.g. "42e01f" -> "constrained-baseline".

    Names: constrained-baseline, baseline, main, high, constrained-high, predictive-high-444.
    Raises ValueError for a malformed id or a profile_idc/profile-iop pair libwebrtc does not
    know (such a payload type can never match a browser's).
    """
    profile_idc, profile_iop, _level = _split(profile_level_id)
    for idc, (mask, value), name in _PROFILE_PATTERNS:
        if profile_idc == idc and profile_iop & mask == value:
            return name
    raise ValueError(
        f"profile-level-id {profile_level_id!r} is no known H.264 profile "
        f"(profile_idc {profile_idc:#04x}, profile-iop {profile_iop:08b})"
    )


def profile_display_name(profile: str) -> str:
    """Human-readable form of an h264_profile() name, for error messages."""
    return profile.replace("-", " ")


def profile_level_id_level(profile_level_id: str) -> int:
    """The level_idc byte of a profile-level-id (e.g. 0x1f for level 3.1)."""
    return _split(profile_level_id)[2]


@dataclass(frozen=True)
class H264Format:
    """One H.264 payload type as offered (or, in an Answer, as negotiated)."""

    payload_type: int
    profile_level_id: str  # 6 lowercase hex digits
    packetization_mode: int
    level_asymmetry_allowed: bool
    rtcp_fb: tuple[str, ...]  # e.g. ("nack", "nack pli", "ccm fir")
    rtx_payload_type: int | None

    @property
    def profile(self) -> str | None:
        """h264_profile() of this format, or None if libwebrtc would not recognise it."""
        try:
            return h264_profile(self.profile_level_id)
        except ValueError:
            return None


def h264_format(
    payload_type: int,
    parameters: Mapping[str, str],
    rtcp_fb: Sequence[str],
    rtx_payload_type: int | None,
) -> H264Format:
    """Build an H264Format from a payload type's fmtp parameters (keys lowercased).

    Raises ValueError naming the parameter when profile-level-id, packetization-mode or
    level-asymmetry-allowed is malformed.
    """
    plid = parameters.get("profile-level-id", DEFAULT_PROFILE_LEVEL_ID)
    if not _HEX6.fullmatch(plid):
        raise ValueError(f"a=fmtp:{payload_type} profile-level-id {plid!r} is not 6 hex digits")
    mode_text = parameters.get("packetization-mode", "0")
    if mode_text not in ("0", "1", "2"):
        raise ValueError(f"a=fmtp:{payload_type} packetization-mode {mode_text!r} is not 0, 1 or 2")
    asym_text = parameters.get("level-asymmetry-allowed", "0")
    if asym_text not in ("0", "1"):
        raise ValueError(
            f"a=fmtp:{payload_type} level-asymmetry-allowed {asym_text!r} is not 0 or 1"
        )
    return H264Format(
        payload_type=payload_type,
        profile_level_id=plid.lower(),
        packetization_mode=int(mode_text),
        level_asymmetry_allowed=asym_text == "1",
        rtcp_fb=tuple(rtcp_fb),
        rtx_payload_type=rtx_payload_type,
    )


class Codec(Protocol):
    """What h264_formats() needs of an offered payload type (sdp.RtpCodec has it)."""

    @property
    def payload_type(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def clock_rate(self) -> int: ...
    @property
    def parameters(self) -> Mapping[str, str]: ...
    @property
    def rtcp_fb(self) -> tuple[str, ...]: ...


def h264_formats(codecs: Sequence[Codec]) -> list[H264Format]:
    """The H.264 formats among a section's payload types, each with its rtx payload type."""
    rtx_for: dict[int, int] = {}
    for codec in codecs:
        apt = codec.parameters.get("apt")
        if codec.name.lower() == "rtx" and apt is not None:
            if not apt.isdigit() or int(apt) > 127:
                raise ValueError(f"a=fmtp:{codec.payload_type} apt={apt[:20]!r} is no payload type")
            rtx_for.setdefault(int(apt), codec.payload_type)
    return [
        h264_format(c.payload_type, c.parameters, c.rtcp_fb, rtx_for.get(c.payload_type))
        for c in codecs
        if c.name.lower() == "h264" and c.clock_rate == 90000
    ]


def choose_format(formats: Sequence[H264Format], profile: str) -> H264Format | None:
    """First format with packetization-mode=1 and `profile`, preferring nack + nack pli."""
    candidates = [f for f in formats if f.packetization_mode == 1 and f.profile == profile]
    with_nack = [f for f in candidates if "nack" in f.rtcp_fb and "nack pli" in f.rtcp_fb]
    return next(iter(with_nack or candidates), None)


def _level_rank(profile_level_id: str) -> float:
    """The level for ordering; level 1b (between 1 and 1.1) ranks 10.5."""
    profile_idc, profile_iop, level = _split(profile_level_id)
    # Level 1b is level_idc 11 plus constraint_set3 in the profiles whose SPS can say so,
    # level_idc 9 in the High ones (H.264 A.3.1, A.3.3); libwebrtc reads it the same way.
    if level == 9 or (level == 11 and profile_idc in (0x42, 0x4D, 0x58) and profile_iop & 0x10):
        return 10.5
    return float(level)


def _level_name(profile_level_id: str) -> str:
    if _level_rank(profile_level_id) == 10.5:
        return "1b"
    level = profile_level_id_level(profile_level_id)
    return f"{level // 10}.{level % 10}"


def answer_format(
    offered: H264Format, stream_profile_level_id: str, feedback: Sequence[str], *, rtx: bool = False
) -> H264Format:
    """The format as answered: offered profile bytes with the stream's level, the offer's
    level-asymmetry-allowed, only the `feedback` we implement that was offered, and the
    offered rtx payload type only with `rtx` (the sender then retransmits on it, RFC 4588).

    Raises ValueError when the offer does not allow level asymmetry and the stream's level
    is above the offered one.
    """
    # Without level asymmetry (RFC 6184 8.2.2) the answered level binds our sending too.
    # libwebrtc then answers min(own level, offered level) and caps its encoder to it; our
    # stream's level is fixed, so answering the lower level would be a lie: refuse instead.
    if not offered.level_asymmetry_allowed and _level_rank(stream_profile_level_id) > (
        _level_rank(offered.profile_level_id)
    ):
        raise ValueError(
            f"stream level {_level_name(stream_profile_level_id)} is above the offered "
            f"{_level_name(offered.profile_level_id)} and the offer does not allow level "
            "asymmetry"
        )
    level = profile_level_id_level(stream_profile_level_id)
    return replace(
        offered,
        profile_level_id=f"{offered.profile_level_id[:4]}{level:02x}",
        packetization_mode=1,
        rtcp_fb=tuple(fb for fb in feedback if fb in offered.rtcp_fb),
        rtx_payload_type=offered.rtx_payload_type if rtx else None,
    )


def fmtp(fmt: H264Format) -> str:
    """The a=fmtp parameters for a format (in libwebrtc's alphabetical order)."""
    return (
        f"level-asymmetry-allowed={int(fmt.level_asymmetry_allowed)};"
        f"packetization-mode={fmt.packetization_mode};profile-level-id={fmt.profile_level_id}"
    )
