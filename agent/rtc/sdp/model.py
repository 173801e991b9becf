"""What an offer is made of once parsed: roles and directions as enums, and the sections."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from agent.rtc.fingerprint import digest_size
from agent.rtc.h264_profile import H264Format

from .errors import NegotiationError
from .lexer import HEX_PAIRS, TOKEN, Attributes


class Setup(StrEnum):
    """An a=setup value (RFC 4145, RFC 8842): who opens the DTLS handshake."""

    ACTPASS = "actpass"
    ACTIVE = "active"
    PASSIVE = "passive"
    HOLDCONN = "holdconn"


class Direction(StrEnum):
    """A media direction attribute, from the offerer's point of view."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"


DIRECTIONS = tuple(str(d) for d in Direction)
SETUP_ROLES = tuple(str(s) for s in Setup)


@dataclass(frozen=True)
class Fingerprint:
    """A certificate fingerprint (RFC 8122): hash name and colon-separated digest."""

    algorithm: str  # lowercased, e.g. "sha-256"
    value: str  # uppercase hex with colons

    @classmethod
    def parse(cls, text: str) -> Fingerprint:
        """Parse the value of an a=fingerprint attribute ("sha-256 AB:CD:...")."""
        parts = text.split()
        if len(parts) != 2 or not TOKEN.fullmatch(parts[0]) or not HEX_PAIRS.fullmatch(parts[1]):
            raise NegotiationError(f"a=fingerprint:{text[:80]} is not '<hash> <hex:hex:...>'")
        algorithm, value = parts[0].lower(), parts[1].upper()
        try:
            size: int | None = digest_size(algorithm)
        except ValueError:
            size = None  # a hash we cannot compute: parsed, and ignored by the DTLS check
        if size is not None and len(value) != 3 * size - 1:
            raise NegotiationError(f"a=fingerprint {algorithm} digest is not {size} bytes long")
        return cls(algorithm, value)

    def serialize(self) -> str:
        """The attribute value, as it goes after "a=fingerprint:"."""
        return f"{self.algorithm} {self.value}"


@dataclass(frozen=True)
class RtpCodec:
    """A payload type of an RTP section: a=rtpmap plus its a=fmtp and a=rtcp-fb lines."""

    payload_type: int
    name: str  # as written, e.g. "H264", "rtx"
    clock_rate: int
    channels: int | None
    parameters: dict[str, str]  # a=fmtp, keys lowercased; a flag without "=" maps to ""
    rtcp_fb: tuple[str, ...]  # including the a=rtcp-fb:* ones


@dataclass(frozen=True)
class Extmap:
    """An RTP header extension offered with a=extmap (RFC 8285)."""

    id: int
    uri: str
    direction: Direction | None


@dataclass(frozen=True)
class MediaSection:
    """One m= section. Transport attributes hold the effective value: media level, else session.

    `candidates` are the texts after "candidate:". For application sections `formats` is
    ["webrtc-datachannel"]; for RTP ones each payload type once, as first listed.
    `max_message_size` None means the RFC 8841 default of 64 KiB.
    """

    index: int
    kind: str
    mid: str
    port: int
    protocol: str
    formats: list[str]
    direction: Direction
    codecs: list[RtpCodec]
    h264: list[H264Format]
    extmaps: list[Extmap]
    candidates: list[str]
    end_of_candidates: bool
    sctp_port: int | None
    max_message_size: int | None
    ice_ufrag: str | None
    ice_pwd: str | None
    fingerprints: list[Fingerprint]
    setup: Setup | None
    ice_options: tuple[str, ...]
    rtcp_mux: bool
    bundle_only: bool
    attributes: Attributes  # every a= line of the section, in order

    @property
    def rejected(self) -> bool:
        """The offerer itself disabled this section (port 0 without a=bundle-only)."""
        return self.port == 0 and not self.bundle_only

    @property
    def receives(self) -> bool:
        """The offerer wants to receive media on it (recvonly or sendrecv)."""
        return self.direction in (Direction.RECVONLY, Direction.SENDRECV)

    @property
    def label(self) -> str:
        """How error messages name this section."""
        return f"m={self.kind} section (mid {self.mid})"
