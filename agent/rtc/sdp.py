"""SDP offer parsing and answer building for the device's side of a WebRTC session.

The viewer makes the offer, the device answers (PROTOCOL.md section 4): one BUNDLE transport
with rtcp-mux and trickle ICE, one sendonly H.264 video section whose profile is the one the
encoder really produces, and an SCTP datachannel section. Everything else is rejected with
port 0, except an unwanted BUNDLE tag section (accepted inactive, see build_answer). Anything
in an offer that is malformed, missing or self-contradictory raises NegotiationError with a
message naming the attribute, which the signalling layer passes to the client (-32004).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from .h264_profile import (
    H264Format,
    answer_format,
    choose_format,
    fmtp,
    h264_formats,
    h264_profile,
    profile_display_name,
    profile_level_id_level,
)

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
SETUP_ROLES = ("actpass", "active", "passive", "holdconn")
# Digest sizes of the hashes the DTLS layer can compute; other names are parsed and ignored.
FINGERPRINT_HASHES = {"sha-1": 20, "sha-224": 28, "sha-256": 32, "sha-384": 48, "sha-512": 64}
RTP_PROTOCOL = "UDP/TLS/RTP/SAVPF"
SCTP_PROTOCOL = "UDP/DTLS/SCTP"
DATACHANNEL_FORMAT = "webrtc-datachannel"
ANSWER_SCTP_PORT = 5000
ANSWER_MAX_MESSAGE_SIZE = 262144
# Feedback the device acts on as a sender; transport-cc is not implemented, so never answered.
IMPLEMENTED_RTCP_FB = ("nack", "nack pli", "ccm fir", "goog-remb")
# Bounds on what an offer may repeat, so parsing stays linear in its size whatever it holds.
# Real offers stay far below them (Chromium: ~170 attributes and 34 payload types a section).
MAX_LINE_LENGTH = 4096
MAX_SECTIONS = 64
MAX_ATTRIBUTES_PER_SECTION = 1024
MAX_FORMATS = 128  # an m= line listing more than there are payload types is not an offer
MAX_RTCP_FB_PER_PAYLOAD_TYPE = 32  # distinct values, counting those of a=rtcp-fb:*
_NEEDS_VALUE = {"mid", "candidate", "rtpmap", "fmtp", "rtcp-fb", "extmap", "sctp-port", "group"}
_NEEDS_VALUE |= {"ice-ufrag", "ice-pwd", "fingerprint", "setup", "ice-options"}

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]{1,64}")
_PRINTABLE = re.compile(r"[!-~]{1,64}")
_ICE_UFRAG = re.compile(r"[A-Za-z0-9+/]{4,256}")
_ICE_PWD = re.compile(r"[A-Za-z0-9+/]{22,256}")
_HEX_PAIRS = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2})*")
_UINT = re.compile(r"[0-9]{1,20}")

_Attributes = list[tuple[str, str | None]]


class NegotiationError(ValueError):
    """An offer the device cannot answer; the message names what is missing or incompatible."""


class LocalUsageError(TypeError):
    """Our own code called the SDP API with invalid arguments: a bug of ours, not the peer's.

    Deliberately not a ValueError: NegotiationError is one (the parse convention), so a handler
    that maps ValueError to "the client's offer is bad" can never catch our bug by accident.
    """


class PreferredSetup(StrEnum):
    """The DTLS role the device wants when the offer lets it choose (webrtc.dtls_role).

    AUTO answers actpass with active (RFC 8842 recommends the answerer be the DTLS client);
    against an active or passive offer every preference gives the only valid answer... except
    an explicit one that conflicts, which is refused.
    """

    AUTO = "auto"
    ACTIVE = "active"
    PASSIVE = "passive"


def _uint(text: str, what: str, low: int, high: int) -> int:
    if not _UINT.fullmatch(text) or not low <= int(text) <= high:
        raise NegotiationError(f"{what} {text[:40]!r} is not an integer in {low}..{high}")
    return int(text)


@dataclass(frozen=True)
class Fingerprint:
    """A certificate fingerprint (RFC 8122): hash name and colon-separated digest."""

    algorithm: str  # lowercased, e.g. "sha-256"
    value: str  # uppercase hex with colons

    @classmethod
    def parse(cls, text: str) -> Fingerprint:
        """Parse the value of an a=fingerprint attribute ("sha-256 AB:CD:...")."""
        parts = text.split()
        if len(parts) != 2 or not _TOKEN.fullmatch(parts[0]) or not _HEX_PAIRS.fullmatch(parts[1]):
            raise NegotiationError(f"a=fingerprint:{text[:80]} is not '<hash> <hex:hex:...>'")
        algorithm, value = parts[0].lower(), parts[1].upper()
        size = FINGERPRINT_HASHES.get(algorithm)
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
    direction: str | None


@dataclass(frozen=True)
class MediaSection:
    """One m= section. Transport attributes hold the effective value: media level, else session.

    `candidates` are the texts after "candidate:". For application sections `formats` is
    ["webrtc-datachannel"]; `max_message_size` None means the RFC 8841 default of 64 KiB.
    """

    index: int
    kind: str
    mid: str
    port: int
    protocol: str
    formats: list[str]
    direction: str
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
    setup: str | None
    ice_options: tuple[str, ...]
    rtcp_mux: bool
    bundle_only: bool
    attributes: _Attributes  # every a= line of the section, in order

    @property
    def rejected(self) -> bool:
        """The offerer itself disabled this section (port 0 without a=bundle-only)."""
        return self.port == 0 and not self.bundle_only

    @property
    def label(self) -> str:
        """How error messages name this section."""
        return f"m={self.kind} section (mid {self.mid})"


def _lines(text: str | bytes) -> list[tuple[str, str]]:
    """(type letter, value) of every non-blank line; CRLF or LF line endings."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise NegotiationError("SDP is not UTF-8 text") from None
    if not isinstance(text, str):
        raise NegotiationError("SDP must be text")
    result = []
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw.removesuffix("\r")
        if not line.strip():
            continue
        if _CONTROL.search(line):
            raise NegotiationError(f"SDP line {number} contains a control character")
        if len(line) < 2 or line[1] != "=" or not "a" <= line[0] <= "z":
            raise NegotiationError(f"SDP line {number} is not '<letter>=<value>': {line[:40]!r}")
        if len(line) > MAX_LINE_LENGTH:
            raise NegotiationError(
                f"SDP line {number} is longer than {MAX_LINE_LENGTH} characters (the cap)"
            )
        result.append((line[0], line[2:]))
    return result


def _attribute(text: str) -> tuple[str, str | None]:
    name, sep, value = text.partition(":")
    if not _TOKEN.fullmatch(name):
        raise NegotiationError(f"a={text[:40]} has no valid attribute name")
    if name in _NEEDS_VALUE and not value.strip():
        raise NegotiationError(f"a={name} has no value")
    return name, value.strip() if sep else None


def _values(attributes: _Attributes, name: str) -> list[str]:
    return [value for n, value in attributes if n == name and value is not None]


def _single(attributes: _Attributes, name: str, where: str) -> str | None:
    found = list(dict.fromkeys(_values(attributes, name)))
    if len(found) > 1:
        raise NegotiationError(f"{where} has conflicting a={name} lines")
    return found[0] if found else None


def _has(attributes: _Attributes, name: str) -> bool:
    return any(n == name for n, _ in attributes)


@dataclass(frozen=True)
class _Transport:
    """Attributes allowed at session level, overridden per section."""

    ice_ufrag: str | None
    ice_pwd: str | None
    fingerprints: list[Fingerprint]
    setup: str | None
    direction: str | None
    ice_options: tuple[str, ...] | None

    @classmethod
    def parse(cls, attributes: _Attributes, where: str) -> _Transport:
        ufrag = _single(attributes, "ice-ufrag", where)
        if ufrag is not None and not _ICE_UFRAG.fullmatch(ufrag):
            raise NegotiationError(f"{where}: a=ice-ufrag {ufrag[:40]!r} is not 4-256 ice-chars")
        pwd = _single(attributes, "ice-pwd", where)
        if pwd is not None and not _ICE_PWD.fullmatch(pwd):
            raise NegotiationError(f"{where}: a=ice-pwd is not 22-256 ice-chars")
        setup = _single(attributes, "setup", where)
        if setup is not None and setup.lower() not in SETUP_ROLES:
            raise NegotiationError(f"{where}: a=setup:{setup[:40]} is not one of {SETUP_ROLES}")
        directions = list(dict.fromkeys(n for n, _ in attributes if n in DIRECTIONS))
        if len(directions) > 1:
            raise NegotiationError(f"{where} has conflicting direction attributes")
        options = _values(attributes, "ice-options")
        return cls(
            ice_ufrag=ufrag,
            ice_pwd=pwd,
            fingerprints=[Fingerprint.parse(v) for v in _values(attributes, "fingerprint")],
            setup=setup.lower() if setup else None,
            direction=directions[0] if directions else None,
            ice_options=tuple(" ".join(options).split()) if options else None,
        )


def _codecs(formats: list[str], attributes: _Attributes, where: str) -> list[RtpCodec]:
    rtpmaps: dict[int, tuple[str, int, int | None]] = {}
    for value in _values(attributes, "rtpmap"):
        pt_text, _, encoding = value.partition(" ")
        pt = _uint(pt_text, f"{where} a=rtpmap payload type", 0, 127)
        bits = encoding.strip().split("/")
        if len(bits) not in (2, 3) or not _TOKEN.fullmatch(bits[0]):
            raise NegotiationError(f"{where}: a=rtpmap:{value[:60]} is malformed")
        rate = _uint(bits[1], f"a=rtpmap:{pt} clock rate", 1, 2**32 - 1)
        channels = _uint(bits[2], f"a=rtpmap:{pt} channels", 1, 255) if len(bits) == 3 else None
        if rtpmaps.setdefault(pt, (bits[0], rate, channels)) != (bits[0], rate, channels):
            raise NegotiationError(f"{where} has conflicting a=rtpmap:{pt} lines")
    fmtps: dict[int, dict[str, str]] = {}
    for value in _values(attributes, "fmtp"):
        pt_text, _, params_text = value.partition(" ")
        pt = _uint(pt_text, f"{where} a=fmtp payload type", 0, 127)
        pairs = (item.partition("=") for item in params_text.split(";"))
        params = {k.strip().lower(): v.strip() for k, _, v in pairs if k.strip()}
        if fmtps.setdefault(pt, params) != params:
            raise NegotiationError(f"{where} has conflicting a=fmtp:{pt} lines")
    # Ordered sets (dicts): a value repeated a thousand times costs a thousand lookups.
    feedback: dict[str, dict[str, None]] = {}
    for value in _values(attributes, "rtcp-fb"):
        pt_text, _, kind = value.partition(" ")
        if pt_text != "*":
            pt_text = str(_uint(pt_text, f"{where} a=rtcp-fb payload type", 0, 127))
        if not kind.split():
            raise NegotiationError(f"{where}: a=rtcp-fb:{pt_text} names no feedback")
        feedback.setdefault(pt_text, {})[" ".join(kind.split())] = None
    wildcard = feedback.get("*", {})
    codecs = []
    for fmt in formats:
        if int(fmt) in rtpmaps:  # static payload types without one: nothing we would pick
            fb = {**feedback.get(fmt, {}), **wildcard}
            if len(fb) > MAX_RTCP_FB_PER_PAYLOAD_TYPE:
                raise NegotiationError(
                    f"{where}: payload type {fmt} has more than "
                    f"{MAX_RTCP_FB_PER_PAYLOAD_TYPE} distinct a=rtcp-fb values (the cap)"
                )
            params = fmtps.get(int(fmt), {})
            codecs.append(RtpCodec(int(fmt), *rtpmaps[int(fmt)], params, tuple(fb)))
    return codecs


def _extmaps(attributes: _Attributes, where: str) -> list[Extmap]:
    extmaps: dict[int, Extmap] = {}
    for value in _values(attributes, "extmap"):
        parts = value.split()
        id_text, _, direction = parts[0].partition("/")
        ext_id = _uint(id_text, f"{where} a=extmap id", 1, 4351)
        if 255 < ext_id < 4096 or ext_id == 15 or len(parts) < 2:
            raise NegotiationError(f"{where}: a=extmap:{value[:60]} is malformed or reserved")
        if direction and direction not in DIRECTIONS:
            raise NegotiationError(f"{where}: a=extmap direction {direction[:20]!r} is unknown")
        entry = Extmap(ext_id, parts[1], direction or None)
        if extmaps.setdefault(ext_id, entry).uri != entry.uri:
            raise NegotiationError(f"{where} has conflicting a=extmap:{ext_id} lines")
    return list(extmaps.values())


def _section(index: int, mline: str, attributes: _Attributes, session: _Transport) -> MediaSection:
    parts = mline.split()
    where = f"m= line {index}"
    if len(parts) < 4:
        raise NegotiationError(f"{where} is not '<media> <port> <proto> <fmt> ...'")
    kind, port_text, protocol, formats = parts[0], parts[1], parts[2], parts[3:]
    if len(formats) > MAX_FORMATS:
        raise NegotiationError(f"{where} lists more than {MAX_FORMATS} formats (the cap)")
    if len(attributes) > MAX_ATTRIBUTES_PER_SECTION:
        raise NegotiationError(
            f"{where} has more than {MAX_ATTRIBUTES_PER_SECTION} a= lines (the cap)"
        )
    for item in (kind, protocol, *formats):
        if not _PRINTABLE.fullmatch(item):
            raise NegotiationError(f"{where} has a malformed field {item[:40]!r}")
    port = _uint(port_text, f"{where} port (port ranges are not supported)", 0, 65535)
    is_rtp = "RTP/" in protocol
    for fmt in formats if is_rtp else []:
        _uint(fmt, f"{where} payload type", 0, 127)
    if is_rtp:  # the canonical spelling, each payload type once
        formats = list(dict.fromkeys(str(int(fmt)) for fmt in formats))
    mid = _single(attributes, "mid", where)
    if mid is None or not _TOKEN.fullmatch(mid):
        raise NegotiationError(f"{where} (m={kind}) has no a=mid with a 1-64 character token")
    where = f"m={kind} section (mid {mid})"
    own = _Transport.parse(attributes, where)
    candidates = _values(attributes, "candidate")
    codecs = _codecs(formats, attributes, where) if is_rtp else []
    try:
        h264 = h264_formats(codecs)
    except ValueError as exc:
        raise NegotiationError(f"{where}: {exc}") from None
    sctp_port = _single(attributes, "sctp-port", where)
    max_size = _single(attributes, "max-message-size", where)
    return MediaSection(
        index=index,
        kind=kind,
        mid=mid,
        port=port,
        protocol=protocol,
        formats=formats,
        direction=own.direction or session.direction or "sendrecv",
        codecs=codecs,
        h264=h264,
        extmaps=_extmaps(attributes, where),
        candidates=candidates,
        end_of_candidates=_has(attributes, "end-of-candidates"),
        sctp_port=None if sctp_port is None else _uint(sctp_port, "a=sctp-port", 1, 65535),
        max_message_size=None
        if max_size is None
        else _uint(max_size, "a=max-message-size", 0, 2**64 - 1),
        ice_ufrag=own.ice_ufrag or session.ice_ufrag,
        ice_pwd=own.ice_pwd or session.ice_pwd,
        fingerprints=own.fingerprints or session.fingerprints,
        setup=own.setup or session.setup,
        ice_options=own.ice_options or session.ice_options or (),
        rtcp_mux=_has(attributes, "rtcp-mux"),
        bundle_only=_has(attributes, "bundle-only"),
        attributes=attributes,
    )


def _agree(name: str, values: Iterable[object]) -> object:
    """The one value bundled sections give for `name` (None if none gives one)."""
    present = {value for value in values if value is not None}
    if len(present) > 1:
        raise NegotiationError(f"bundled sections disagree on {name}")
    return present.pop() if present else None


@dataclass(frozen=True)
class Offer:
    """A parsed remote offer. Transport values are those of the BUNDLE transport.

    `bundle` lists the mids of the first a=group:BUNDLE (empty if there is none). Without
    BUNDLE the transport is that of the first active section. `setup` is "active" when the
    offer has no a=setup (the RFC 4145 default).
    """

    sections: list[MediaSection]
    bundle: list[str]
    ice_ufrag: str
    ice_pwd: str
    fingerprints: list[Fingerprint]
    setup: str
    ice_options: tuple[str, ...]
    ice_lite: bool

    @classmethod
    def parse(cls, text: str | bytes) -> Offer:
        """Parse offer SDP text; raises NegotiationError (a ValueError) for any defect."""
        lines = _lines(text)
        if not lines or lines[0] != ("v", "0"):
            raise NegotiationError("SDP does not start with v=0")
        if not any(kind == "o" for kind, _ in lines):
            raise NegotiationError("SDP has no o= line")
        blocks: list[tuple[str, _Attributes]] = [("", [])]  # the session block, then m= ones
        for kind, value in lines[1:]:
            if kind == "m":
                blocks.append((value, []))
            elif kind == "a":
                blocks[-1][1].append(_attribute(value))
        if len(blocks) == 1:
            raise NegotiationError("SDP has no m= section")
        if len(blocks) - 1 > MAX_SECTIONS:
            raise NegotiationError(f"SDP has more than {MAX_SECTIONS} m= sections (the cap)")
        if len(blocks[0][1]) > MAX_ATTRIBUTES_PER_SECTION:
            raise NegotiationError(
                f"SDP has more than {MAX_ATTRIBUTES_PER_SECTION} session-level a= lines (the cap)"
            )
        session_attributes = blocks[0][1]
        session = _Transport.parse(session_attributes, "session level")
        sections = [_section(i, m, a, session) for i, (m, a) in enumerate(blocks[1:])]
        mids = [s.mid for s in sections]
        if len(set(mids)) != len(mids):
            raise NegotiationError("two m= sections have the same a=mid")
        groups = []
        for value in _values(session_attributes, "group"):
            semantics, *group = value.split()
            if semantics.upper() == "BUNDLE" and group:
                groups.append(group)
        grouped = [mid for group in groups for mid in group]
        if len(set(grouped)) != len(grouped):
            raise NegotiationError("a mid appears twice in a=group:BUNDLE")
        for mid in set(grouped) - set(mids):
            raise NegotiationError(f"a=group:BUNDLE names mid {mid[:40]!r}, which no section has")
        bundle = groups[0] if groups else []
        transport = _transport_sections(sections, bundle)
        ufrag = _agree("ice-ufrag", (s.ice_ufrag for s in transport))
        if ufrag is None:
            raise NegotiationError("offer has no a=ice-ufrag")
        pwd = _agree("ice-pwd", (s.ice_pwd for s in transport))
        if pwd is None:
            raise NegotiationError("offer has no a=ice-pwd")
        if _agree("fingerprint", (frozenset(s.fingerprints) or None for s in transport)) is None:
            raise NegotiationError("offer has no a=fingerprint")
        fingerprints = next(s.fingerprints for s in transport if s.fingerprints)
        if not any(f.algorithm in FINGERPRINT_HASHES for f in fingerprints):
            hashes = ", ".join(FINGERPRINT_HASHES)
            raise NegotiationError(f"offer has no a=fingerprint with a supported hash ({hashes})")
        return cls(
            sections=sections,
            bundle=bundle,
            ice_ufrag=str(ufrag),
            ice_pwd=str(pwd),
            fingerprints=fingerprints,
            setup=str(_agree("setup", (s.setup for s in transport)) or "active"),
            ice_options=transport[0].ice_options,
            # session-level only (RFC 8839), but a misplaced one still means a lite peer
            ice_lite=any(_has(a, "ice-lite") for _, a in blocks),
        )

    def section(self, mid: str) -> MediaSection | None:
        """The section with this mid, if any."""
        return next((s for s in self.sections if s.mid == mid), None)

    @property
    def video(self) -> MediaSection | None:
        """The video section to send on: the first active one that wants to receive
        (recvonly/sendrecv), else the first active one."""
        videos = [s for s in self.sections if s.kind == "video" and not s.rejected]
        receiving = (s for s in videos if s.direction in ("recvonly", "sendrecv"))
        return next(receiving, videos[0] if videos else None)

    @property
    def application(self) -> MediaSection | None:
        """The first application section the offerer did not reject."""
        return next((s for s in self.sections if s.kind == "application" and not s.rejected), None)

    @property
    def bundle_tag(self) -> MediaSection | None:
        """The offerer's BUNDLE tag: the first active section its a=group:BUNDLE names."""
        active = (self.section(mid) for mid in self.bundle)
        return next((s for s in active if s is not None and not s.rejected), None)

    @property
    def transport_sections(self) -> list[MediaSection]:
        """Active sections that share the one transport: the bundled ones, else the first."""
        return _transport_sections(self.sections, self.bundle)


def _transport_sections(sections: list[MediaSection], bundle: list[str]) -> list[MediaSection]:
    active = [s for s in sections if not s.rejected]
    if not active:
        raise NegotiationError("offer has no active m= section (all ports are 0)")
    if not bundle:
        return active[:1]
    bundled = [s for s in active if s.mid in bundle]
    if not bundled:
        raise NegotiationError("offer's a=group:BUNDLE has no active section")
    return bundled


def select_h264(section: MediaSection, stream_profile_level_id: str) -> H264Format:
    """The offered H.264 format to send the stream with.

    It must have packetization-mode=1 and the stream's profile (levels may differ); among
    those, the first with rtcp-fb nack and nack pli, else the first. Raises NegotiationError
    naming the profile when the offer has none.
    """
    try:
        wanted = h264_profile(stream_profile_level_id)
    except ValueError as exc:
        raise NegotiationError(f"stream {exc}") from None
    chosen = choose_format(section.h264, wanted)
    if chosen is None:
        raise NegotiationError(
            f"no H.264 payload type with profile {stream_profile_level_id[:4].lower()} "
            f"({profile_display_name(wanted)}) and packetization-mode=1 in {section.label}"
        )
    return chosen


def preferred_setup(value: PreferredSetup | str | None) -> PreferredSetup:
    """`value` as a PreferredSetup (None: AUTO); anything else is our bug: LocalUsageError."""
    if value is None:
        return PreferredSetup.AUTO
    try:
        return PreferredSetup(value)
    except ValueError:
        choices = ", ".join(repr(str(p)) for p in PreferredSetup)
        raise LocalUsageError(
            f"preferred DTLS setup must be one of {choices}, not {value!r}"
        ) from None


def answer_setup(offer_setup: str, preferred: PreferredSetup | str | None = None) -> str:
    """The answer's a=setup for an offer's; `preferred` if compatible (None means AUTO).

    actpass lets us choose (AUTO: active, as RFC 8842 recommends the answerer be the DTLS
    client); active needs passive and passive needs active, which AUTO answers. A
    conflicting explicit preference, or an offer of holdconn, raises NegotiationError.
    """
    wanted = preferred_setup(preferred)
    if offer_setup == "actpass":
        return "passive" if wanted is PreferredSetup.PASSIVE else "active"
    required = {"active": "passive", "passive": "active"}.get(offer_setup)
    if required is None:
        raise NegotiationError(f"offer a=setup:{offer_setup} cannot be answered")
    if wanted not in (PreferredSetup.AUTO, required):
        raise NegotiationError(
            f"offer a=setup:{offer_setup} needs answer a=setup:{required}, not {wanted}"
        )
    return required


@dataclass(frozen=True)
class Answer:
    """The answer SDP and what it negotiated.

    `h264` is the format as answered (our level, only the feedback we answered, no rtx), or
    None when no video is accepted. `mids` are the accepted mids (an inactive tag included) in
    BUNDLE order; the first, `transport_mid`, names the offer section whose candidates
    (`remote_candidates`) the one transport uses: trickled remote candidates for other mids
    belong to transports BUNDLE discards.
    """

    sdp: str
    h264: H264Format | None
    mids: list[str]
    video_mid: str | None
    send_video: bool
    datachannel_mid: str | None
    remote_sctp_port: int | None
    remote_max_message_size: int | None
    setup: str
    transport_mid: str
    remote_candidates: list[str]
    remote_end_of_candidates: bool


def _check_argument(value: str, pattern: re.Pattern[str], what: str) -> None:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise LocalUsageError(f"invalid {what}: {value!r}")


def _usable(section: MediaSection, transport: list[MediaSection], protocol: str) -> None:
    if all(section is not s for s in transport):
        raise NegotiationError(
            f"{section.label} is not bundled with the transport (a=group:BUNDLE)"
        )
    if section.protocol != protocol:
        raise NegotiationError(f"{section.label} uses {section.protocol}, need {protocol}")


def build_answer(
    offer: Offer,
    *,
    ice_ufrag: str,
    ice_pwd: str,
    fingerprint: Fingerprint,
    setup: PreferredSetup | str | None,
    candidates: Sequence[str],
    end_of_candidates: bool,
    stream_profile_level_id: str,
    ssrc: int,
    cname: str,
    msid: tuple[str, str],
    session_id: int,
    accept_datachannel: bool,
) -> Answer:
    """Build the answer PROTOCOL.md section 4 describes; raises NegotiationError if impossible.

    `setup` is the preferred DTLS role (a PreferredSetup or its value; None: AUTO);
    `candidates` are texts after "candidate:" for the transport section. Invalid local
    arguments (ours, not the peer's) raise LocalUsageError, never NegotiationError.
    """
    _check_argument(ice_ufrag, _ICE_UFRAG, "ice_ufrag")
    _check_argument(ice_pwd, _ICE_PWD, "ice_pwd")
    _check_argument(cname, _PRINTABLE, "cname")
    for part in msid:
        _check_argument(part, _TOKEN, "msid")
    if not isinstance(fingerprint, Fingerprint):
        raise LocalUsageError("fingerprint must be a Fingerprint")
    try:
        Fingerprint.parse(fingerprint.serialize())
        profile_level_id_level(stream_profile_level_id)
    except ValueError as exc:
        raise LocalUsageError(f"invalid local argument: {exc}") from None
    for candidate in candidates:
        if not isinstance(candidate, str) or not candidate or _CONTROL.search(candidate):
            raise LocalUsageError(f"invalid candidate: {candidate!r}")
    if not 0 <= ssrc < 2**32 or not 0 <= session_id < 2**63:
        raise LocalUsageError("ssrc must fit 32 bits and session_id 63 bits")
    preferred = preferred_setup(setup)
    if offer.ice_lite:
        raise NegotiationError(
            "ice-lite offers are not supported: the device cannot be the controlling agent"
        )
    role = answer_setup(offer.setup, preferred)

    transport = offer.transport_sections
    video, application = offer.video, offer.application
    chosen: H264Format | None = None
    accepted: list[MediaSection] = []
    if video is not None:
        _usable(video, transport, RTP_PROTOCOL)
        if not video.rtcp_mux:
            raise NegotiationError(f"{video.label} has no a=rtcp-mux")
        offered = select_h264(video, stream_profile_level_id)
        try:
            chosen = answer_format(offered, stream_profile_level_id, IMPLEMENTED_RTCP_FB)
        except ValueError as exc:
            raise NegotiationError(f"{video.label}: {exc}") from None
        accepted.append(video)
    if not accept_datachannel:
        application = None
    if application is not None:
        _usable(application, transport, SCTP_PROTOCOL)
        if DATACHANNEL_FORMAT not in application.formats:
            raise NegotiationError(f"{application.label} is not {DATACHANNEL_FORMAT}")
        accepted.append(application)
    if not accepted:
        raise NegotiationError("offer has no video or datachannel section this device accepts")
    # The offerer's BUNDLE tag section carries the transport (RFC 8843): a max-bundle
    # Chromium builds it for that section alone, fails setRemoteDescription ("Failed to
    # setup RTCP mux") when the answer rejects it, and trickles candidates with its mid.
    # So a tag section we would reject (audio, a second video, a datachannel we do not
    # serve) is accepted but inactive instead; no media or SCTP ever flows on it.
    tag = offer.bundle_tag
    placeholder = tag if tag is not None and tag not in accepted and _can_hold(tag) else None
    if placeholder is not None:
        accepted.append(placeholder)
    accepted.sort(key=lambda s: (s is not tag, s.index))  # the tag first, as RFC 8843 wants
    accepted_mids = [s.mid for s in accepted]
    send_video = video is not None and video.direction in ("recvonly", "sendrecv")

    transport_lines = [f"a=ice-ufrag:{ice_ufrag}", f"a=ice-pwd:{ice_pwd}", "a=ice-options:trickle"]
    transport_lines += [f"a=fingerprint:{fingerprint.serialize()}", f"a=setup:{role}"]
    lines = ["v=0", f"o=- {session_id} 1 IN IP4 0.0.0.0", "s=-", "t=0 0"]
    if offer.bundle:
        lines.append("a=group:BUNDLE " + " ".join(accepted_mids))
    if send_video:
        lines.append("a=msid-semantic:WMS *")
    for section in offer.sections:
        if section.mid not in accepted_mids:
            lines += [f"m={section.kind} 0 {section.protocol} {section.formats[0]}"]
            lines += ["c=IN IP4 0.0.0.0", f"a=mid:{section.mid}", "a=inactive"]
            continue
        if section is video and chosen is not None:
            formats = str(chosen.payload_type)
        elif section.kind == "application":
            formats = DATACHANNEL_FORMAT
        else:
            formats = section.formats[0]
        lines += [f"m={section.kind} 9 {section.protocol} {formats}", "c=IN IP4 0.0.0.0"]
        if section.mid == accepted_mids[0]:
            lines += [f"a=candidate:{c}" for c in candidates]
            if end_of_candidates:
                lines.append("a=end-of-candidates")
        lines += [*transport_lines, f"a=mid:{section.mid}"]
        if section is video and chosen is not None:
            lines += _video_lines(chosen, send_video, ssrc, cname, msid)
        elif section.kind == "application":
            lines += [
                f"a=sctp-port:{ANSWER_SCTP_PORT}",
                f"a=max-message-size:{ANSWER_MAX_MESSAGE_SIZE}",
            ]
        else:  # the inactive placeholder: its first payload type, as offered
            lines += ["a=inactive", "a=rtcp-mux"]
            for name in ("rtpmap", "fmtp"):
                values = dict.fromkeys(_values(section.attributes, name))
                lines += [f"a={name}:{v}" for v in values if v.split(" ", 1)[0] == formats]
    first = accepted[0]
    return Answer(
        sdp="\r\n".join(lines) + "\r\n",
        h264=chosen,
        mids=accepted_mids,
        video_mid=video.mid if video else None,
        send_video=send_video,
        datachannel_mid=application.mid if application else None,
        # RFC 8841: an offer without a=sctp-port uses 5000
        remote_sctp_port=(application.sctp_port or 5000) if application else None,
        remote_max_message_size=application.max_message_size if application else None,
        setup=role,
        transport_mid=first.mid,
        remote_candidates=list(first.candidates),
        remote_end_of_candidates=first.end_of_candidates,
    )


def _can_hold(section: MediaSection) -> bool:
    """Whether an unwanted section can be answered accepted-but-inactive (see build_answer)."""
    if section.kind == "application":
        return section.protocol == SCTP_PROTOCOL and DATACHANNEL_FORMAT in section.formats
    rtp = section.protocol == RTP_PROTOCOL and section.rtcp_mux
    return rtp and section.kind in ("audio", "video")


def _video_lines(
    fmt: H264Format, send: bool, ssrc: int, cname: str, msid: tuple[str, str]
) -> list[str]:
    pt = fmt.payload_type
    lines = ["a=sendonly" if send else "a=inactive"]
    if send:
        lines.append(f"a=msid:{msid[0]} {msid[1]}")
    lines += ["a=rtcp-mux", f"a=rtpmap:{pt} H264/90000"]
    lines += [f"a=rtcp-fb:{pt} {fb}" for fb in fmt.rtcp_fb]
    lines.append(f"a=fmtp:{pt} {fmtp(fmt)}")
    if send:
        lines.append(f"a=ssrc:{ssrc} cname:{cname}")
    return lines
