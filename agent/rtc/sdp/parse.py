"""Offer text -> model: the sections, their codecs and transport, and the BUNDLE transport.

Anything malformed, missing or self-contradictory raises NegotiationError with a message
naming the attribute. Work is linear in the offer: attributes are indexed by name once,
repeats merge through dicts, and lexer's caps bound what may repeat.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from agent.rtc.fingerprint import SUPPORTED_FINGERPRINT_ALGORITHMS
from agent.rtc.h264_profile import h264_formats

from . import lexer
from .errors import NegotiationError
from .lexer import ICE_PWD, ICE_UFRAG, PRINTABLE, TOKEN, AttributeIndex, Attributes, uint
from .model import (
    DIRECTIONS,
    SETUP_ROLES,
    Direction,
    Extmap,
    Fingerprint,
    MediaSection,
    RtpCodec,
    Setup,
)


@dataclass(frozen=True)
class _Transport:
    """Attributes allowed at session level, overridden per section."""

    ice_ufrag: str | None
    ice_pwd: str | None
    fingerprints: list[Fingerprint]
    setup: Setup | None
    direction: Direction | None
    ice_options: tuple[str, ...] | None

    @classmethod
    def parse(cls, index: AttributeIndex) -> _Transport:
        where = index.where
        ufrag = index.single("ice-ufrag")
        if ufrag is not None and not ICE_UFRAG.fullmatch(ufrag):
            raise NegotiationError(f"{where}: a=ice-ufrag {ufrag[:40]!r} is not 4-256 ice-chars")
        pwd = index.single("ice-pwd")
        if pwd is not None and not ICE_PWD.fullmatch(pwd):
            raise NegotiationError(f"{where}: a=ice-pwd is not 22-256 ice-chars")
        setup = index.single("setup")
        if setup is not None and setup.lower() not in SETUP_ROLES:
            raise NegotiationError(f"{where}: a=setup:{setup[:40]} is not one of {SETUP_ROLES}")
        directions = index.present(DIRECTIONS)
        if len(directions) > 1:
            raise NegotiationError(f"{where} has conflicting direction attributes")
        options = index.values("ice-options")
        return cls(
            ice_ufrag=ufrag,
            ice_pwd=pwd,
            fingerprints=[Fingerprint.parse(v) for v in index.values("fingerprint")],
            setup=Setup(setup.lower()) if setup else None,
            direction=Direction(directions[0]) if directions else None,
            ice_options=tuple(" ".join(options).split()) if options else None,
        )


def _rtpmaps(index: AttributeIndex) -> dict[int, tuple[str, int, int | None]]:
    where = index.where
    rtpmaps: dict[int, tuple[str, int, int | None]] = {}
    for value in index.values("rtpmap"):
        pt_text, _, encoding = value.partition(" ")
        pt = uint(pt_text, f"{where} a=rtpmap payload type", 0, 127)
        bits = encoding.strip().split("/")
        if len(bits) not in (2, 3) or not TOKEN.fullmatch(bits[0]):
            raise NegotiationError(f"{where}: a=rtpmap:{value[:60]} is malformed")
        rate = uint(bits[1], f"a=rtpmap:{pt} clock rate", 1, 2**32 - 1)
        channels = uint(bits[2], f"a=rtpmap:{pt} channels", 1, 255) if len(bits) == 3 else None
        if rtpmaps.setdefault(pt, (bits[0], rate, channels)) != (bits[0], rate, channels):
            raise NegotiationError(f"{where} has conflicting a=rtpmap:{pt} lines")
    return rtpmaps


def _fmtps(index: AttributeIndex) -> dict[int, dict[str, str]]:
    fmtps: dict[int, dict[str, str]] = {}
    for value in index.values("fmtp"):
        pt_text, _, params_text = value.partition(" ")
        pt = uint(pt_text, f"{index.where} a=fmtp payload type", 0, 127)
        pairs = (item.partition("=") for item in params_text.split(";"))
        params = {k.strip().lower(): v.strip() for k, _, v in pairs if k.strip()}
        if fmtps.setdefault(pt, params) != params:
            raise NegotiationError(f"{index.where} has conflicting a=fmtp:{pt} lines")
    return fmtps


def _feedback(index: AttributeIndex) -> dict[str, dict[str, None]]:
    """a=rtcp-fb values per payload type ("*" for all), as ordered sets: a value repeated a
    thousand times costs a thousand dict lookups, not a thousand list scans."""
    feedback: dict[str, dict[str, None]] = {}
    for value in index.values("rtcp-fb"):
        pt_text, _, kind = value.partition(" ")
        if pt_text != "*":
            pt_text = str(uint(pt_text, f"{index.where} a=rtcp-fb payload type", 0, 127))
        if not kind.split():
            raise NegotiationError(f"{index.where}: a=rtcp-fb:{pt_text} names no feedback")
        feedback.setdefault(pt_text, {})[" ".join(kind.split())] = None
    return feedback


def _codecs(formats: list[str], index: AttributeIndex) -> list[RtpCodec]:
    rtpmaps, fmtps, feedback = _rtpmaps(index), _fmtps(index), _feedback(index)
    wildcard = feedback.get("*", {})
    codecs = []
    for fmt in formats:
        pt = int(fmt)
        if pt not in rtpmaps:  # static payload types without one: nothing we would pick
            continue
        fb = {**feedback.get(fmt, {}), **wildcard}
        if len(fb) > lexer.MAX_RTCP_FB_PER_PAYLOAD_TYPE:
            raise NegotiationError(
                f"{index.where}: payload type {fmt} has more than "
                f"{lexer.MAX_RTCP_FB_PER_PAYLOAD_TYPE} distinct a=rtcp-fb values (the cap)"
            )
        codecs.append(RtpCodec(pt, *rtpmaps[pt], fmtps.get(pt, {}), tuple(fb)))
    return codecs


def _extmaps(index: AttributeIndex) -> list[Extmap]:
    where = index.where
    extmaps: dict[int, Extmap] = {}
    for value in index.values("extmap"):
        parts = value.split()
        id_text, _, direction = parts[0].partition("/")
        ext_id = uint(id_text, f"{where} a=extmap id", 1, 4351)
        if 255 < ext_id < 4096 or ext_id == 15 or len(parts) < 2:
            raise NegotiationError(f"{where}: a=extmap:{value[:60]} is malformed or reserved")
        if direction and direction not in DIRECTIONS:
            raise NegotiationError(f"{where}: a=extmap direction {direction[:20]!r} is unknown")
        entry = Extmap(ext_id, parts[1], Direction(direction) if direction else None)
        if extmaps.setdefault(ext_id, entry).uri != entry.uri:
            raise NegotiationError(f"{where} has conflicting a=extmap:{ext_id} lines")
    return list(extmaps.values())


def _mline(mline: str, where: str) -> tuple[str, int, str, list[str]]:
    """(kind, port, protocol, formats) of an m= line; RTP formats canonical and deduplicated."""
    parts = mline.split()
    if len(parts) < 4:
        raise NegotiationError(f"{where} is not '<media> <port> <proto> <fmt> ...'")
    kind, port_text, protocol, formats = parts[0], parts[1], parts[2], parts[3:]
    if len(formats) > lexer.MAX_FORMATS:
        raise NegotiationError(f"{where} lists more than {lexer.MAX_FORMATS} formats (the cap)")
    for item in (kind, protocol, *formats):
        if not PRINTABLE.fullmatch(item):
            raise NegotiationError(f"{where} has a malformed field {item[:40]!r}")
    port = uint(port_text, f"{where} port (port ranges are not supported)", 0, 65535)
    if "RTP/" in protocol:
        pts = (uint(fmt, f"{where} payload type", 0, 127) for fmt in formats)
        formats = list(dict.fromkeys(str(pt) for pt in pts))
    return kind, port, protocol, formats


def _section(number: int, mline: str, attributes: Attributes, session: _Transport) -> MediaSection:
    kind, port, protocol, formats = _mline(mline, f"m= line {number}")
    index = AttributeIndex(attributes, f"m= line {number}")
    mid = index.single("mid")
    if mid is None or not TOKEN.fullmatch(mid):
        raise NegotiationError(
            f"m= line {number} (m={kind}) has no a=mid with a 1-64 character token"
        )
    index.where = f"m={kind} section (mid {mid})"
    own = _Transport.parse(index)
    codecs = _codecs(formats, index) if "RTP/" in protocol else []
    try:
        h264 = h264_formats(codecs)
    except ValueError as exc:
        raise NegotiationError(f"{index.where}: {exc}") from None
    sctp_port = index.single("sctp-port")
    max_size = index.single("max-message-size")
    return MediaSection(
        index=number,
        kind=kind,
        mid=mid,
        port=port,
        protocol=protocol,
        formats=formats,
        direction=own.direction or session.direction or Direction.SENDRECV,
        codecs=codecs,
        h264=h264,
        extmaps=_extmaps(index),
        candidates=[c for c in index.values("candidate") if not lexer.is_end_of_candidates(c)],
        end_of_candidates=index.has("end-of-candidates")
        or any(lexer.is_end_of_candidates(c) for c in index.values("candidate")),
        sctp_port=None if sctp_port is None else uint(sctp_port, "a=sctp-port", 1, 65535),
        max_message_size=None
        if max_size is None
        else uint(max_size, "a=max-message-size", 0, 2**64 - 1),
        ice_ufrag=own.ice_ufrag or session.ice_ufrag,
        ice_pwd=own.ice_pwd or session.ice_pwd,
        fingerprints=own.fingerprints or session.fingerprints,
        setup=own.setup or session.setup,
        ice_options=own.ice_options or session.ice_options or (),
        rtcp_mux=index.has("rtcp-mux"),
        bundle_only=index.has("bundle-only"),
        attributes=attributes,
    )


def _agree(name: str, values: Iterable[object]) -> object:
    """The one value bundled sections give for `name` (None if none gives one)."""
    present = {value for value in values if value is not None}
    if len(present) > 1:
        raise NegotiationError(f"bundled sections disagree on {name}")
    return present.pop() if present else None


def _blocks(text: str | bytes) -> list[tuple[str, Attributes]]:
    """The session block ("" for its m= line) and then one block per m= line."""
    found = lexer.lines(text)
    if not found or found[0] != ("v", "0"):
        raise NegotiationError("SDP does not start with v=0")
    if not any(kind == "o" for kind, _ in found):
        raise NegotiationError("SDP has no o= line")
    blocks: list[tuple[str, Attributes]] = [("", [])]
    for kind, value in found[1:]:
        if kind == "m":
            if len(blocks) > lexer.MAX_SECTIONS:
                raise NegotiationError(
                    f"SDP has more than {lexer.MAX_SECTIONS} m= sections (the cap)"
                )
            blocks.append((value, []))
        elif kind == "a":
            blocks[-1][1].append(lexer.attribute(value))
    if len(blocks) == 1:
        raise NegotiationError("SDP has no m= section")
    return blocks


def _bundle(session: AttributeIndex, mids: list[str]) -> list[str]:
    """The mids of the first a=group:BUNDLE (empty without one), checked against the sections."""
    if len(set(mids)) != len(mids):
        raise NegotiationError("two m= sections have the same a=mid")
    groups = []
    for value in session.values("group"):
        semantics, *group = value.split()
        if semantics.upper() == "BUNDLE" and group:
            groups.append(group)
    grouped = [mid for group in groups for mid in group]
    if len(set(grouped)) != len(grouped):
        raise NegotiationError("a mid appears twice in a=group:BUNDLE")
    for mid in set(grouped) - set(mids):
        raise NegotiationError(f"a=group:BUNDLE names mid {mid[:40]!r}, which no section has")
    return groups[0] if groups else []


def _transport_sections(sections: list[MediaSection], bundle: list[str]) -> list[MediaSection]:
    active = [s for s in sections if not s.rejected]
    if not active:
        raise NegotiationError("offer has no active m= section (all ports are 0)")
    if not bundle:
        return active[:1]
    bundled_mids = set(bundle)
    bundled = [s for s in active if s.mid in bundled_mids]
    if not bundled:
        raise NegotiationError("offer's a=group:BUNDLE has no active section")
    return bundled


@dataclass(frozen=True)
class Offer:
    """A parsed remote offer. Transport values are those of the BUNDLE transport.

    `bundle` lists the mids of the first a=group:BUNDLE (empty if there is none). Without
    BUNDLE the transport is that of the first active section. `setup` is active when the
    offer has no a=setup (the RFC 4145 default).
    """

    sections: list[MediaSection]
    bundle: list[str]
    ice_ufrag: str
    ice_pwd: str
    fingerprints: list[Fingerprint]
    setup: Setup
    ice_options: tuple[str, ...]
    ice_lite: bool

    @classmethod
    def parse(cls, text: str | bytes) -> Offer:
        """Parse offer SDP text; raises NegotiationError (a ValueError) for any defect."""
        blocks = _blocks(text)
        session_index = AttributeIndex(blocks[0][1], "session level")
        session = _Transport.parse(session_index)
        sections = [_section(i, m, a, session) for i, (m, a) in enumerate(blocks[1:])]
        bundle = _bundle(session_index, [s.mid for s in sections])
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
        if not any(f.algorithm in SUPPORTED_FINGERPRINT_ALGORITHMS for f in fingerprints):
            hashes = ", ".join(sorted(SUPPORTED_FINGERPRINT_ALGORITHMS))
            raise NegotiationError(f"offer has no a=fingerprint with a supported hash ({hashes})")
        setup = _agree("setup", (s.setup for s in transport))
        return cls(
            sections=sections,
            bundle=bundle,
            ice_ufrag=str(ufrag),
            ice_pwd=str(pwd),
            fingerprints=fingerprints,
            setup=Setup(str(setup)) if setup is not None else Setup.ACTIVE,
            ice_options=transport[0].ice_options,
            # session-level only (RFC 8839), but a misplaced one still means a lite peer
            ice_lite=any(name == "ice-lite" for _, a in blocks for name, _ in a),
        )

    def section(self, mid: str) -> MediaSection | None:
        """The section with this mid, if any."""
        return next((s for s in self.sections if s.mid == mid), None)

    @property
    def video(self) -> MediaSection | None:
        """The video section to send on: the first active one that wants to receive
        (recvonly/sendrecv), else the first active one."""
        videos = [s for s in self.sections if s.kind == "video" and not s.rejected]
        return next((s for s in videos if s.receives), videos[0] if videos else None)

    @property
    def application(self) -> MediaSection | None:
        """The first application section the offerer did not reject."""
        return next((s for s in self.sections if s.kind == "application" and not s.rejected), None)

    @property
    def bundle_tag(self) -> MediaSection | None:
        """The offerer's BUNDLE tag: the first active section its a=group:BUNDLE names."""
        by_mid = {s.mid: s for s in self.sections}
        active = (by_mid.get(mid) for mid in self.bundle)
        return next((s for s in active if s is not None and not s.rejected), None)

    @property
    def transport_sections(self) -> list[MediaSection]:
        """Active sections that share the one transport: the bundled ones, else the first."""
        return _transport_sections(self.sections, self.bundle)
