"""The answer text: a Plan and our local description written as SDP lines."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from agent.rtc.h264_profile import H264Format, fmtp

from .errors import LocalUsageError
from .lexer import CONTROL, ICE_PWD, ICE_UFRAG, PRINTABLE, TOKEN, AttributeIndex
from .model import Fingerprint, MediaSection
from .negotiate import DATACHANNEL_FORMAT, TRANSPORT_CC_URI, Plan
from .parse import Offer

ANSWER_SCTP_PORT = 5000
# What our answer accepts (RFC 8841); the association enforces the same number on receive.
# 4 MiB: a snapshot or a file in one message, bounded so a peer can't make a Pi hold more.
ANSWER_MAX_MESSAGE_SIZE = 4 * 1024 * 1024


def _check(value: object, pattern: re.Pattern[str], what: str) -> None:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise LocalUsageError(f"invalid {what}: {value!r}")


@dataclass(frozen=True)
class LocalDescription:
    """Our side of the answer: ICE credentials and candidates, certificate, the video source.

    Checked on construction: an invalid value is our bug and raises LocalUsageError.
    `candidates` are texts after "candidate:".
    """

    ice_ufrag: str
    ice_pwd: str
    fingerprint: Fingerprint
    candidates: Sequence[str]
    end_of_candidates: bool
    ssrc: int
    cname: str
    msid: tuple[str, str]
    session_id: int
    rtx_ssrc: int | None = None  # the RTX stream's SSRC (RFC 4588), when RTX is answered

    def __post_init__(self) -> None:
        _check(self.ice_ufrag, ICE_UFRAG, "ice_ufrag")
        _check(self.ice_pwd, ICE_PWD, "ice_pwd")
        _check(self.cname, PRINTABLE, "cname")
        for part in self.msid:
            _check(part, TOKEN, "msid")
        if not isinstance(self.fingerprint, Fingerprint):
            raise LocalUsageError("fingerprint must be a Fingerprint")
        try:
            Fingerprint.parse(self.fingerprint.serialize())
        except ValueError as exc:
            raise LocalUsageError(f"invalid local fingerprint: {exc}") from None
        for candidate in self.candidates:
            if not isinstance(candidate, str) or not candidate or CONTROL.search(candidate):
                raise LocalUsageError(f"invalid candidate: {candidate!r}")
        if not 0 <= self.ssrc < 2**32 or not 0 <= self.session_id < 2**63:
            raise LocalUsageError("ssrc must fit 32 bits and session_id 63 bits")
        if self.rtx_ssrc is not None and not 0 <= self.rtx_ssrc < 2**32:
            raise LocalUsageError("rtx_ssrc must fit 32 bits")


def write_answer(offer: Offer, plan: Plan, local: LocalDescription) -> str:
    """The answer SDP, one m= section per offered one, in the offer's order."""
    mids = [s.mid for s in plan.accepted]
    lines = ["v=0", f"o=- {local.session_id} 1 IN IP4 0.0.0.0", "s=-", "t=0 0"]
    if offer.bundle:
        lines.append("a=group:BUNDLE " + " ".join(mids))
    if plan.send_video:
        lines.append("a=msid-semantic:WMS *")
    accepted = set(mids)
    for section in offer.sections:
        if section.mid not in accepted:
            lines += [f"m={section.kind} 0 {section.protocol} {section.formats[0]}"]
            lines += ["c=IN IP4 0.0.0.0", f"a=mid:{section.mid}", "a=inactive"]
        else:
            lines += _accepted_section(section, plan, local, first=section.mid == mids[0])
    return "\r\n".join(lines) + "\r\n"


def _accepted_section(
    section: MediaSection, plan: Plan, local: LocalDescription, first: bool
) -> list[str]:
    is_video = section is plan.video and plan.h264 is not None
    if is_video and plan.h264 is not None:
        formats = str(plan.h264.payload_type)
        if plan.h264.rtx_payload_type is not None:
            formats += f" {plan.h264.rtx_payload_type}"
    elif section.kind == "application":
        formats = DATACHANNEL_FORMAT
    else:
        formats = section.formats[0]
    lines = [f"m={section.kind} 9 {section.protocol} {formats}", "c=IN IP4 0.0.0.0"]
    if first:  # the transport section carries the candidates
        lines += [f"a=candidate:{c}" for c in local.candidates]
        if local.end_of_candidates:
            lines.append("a=end-of-candidates")
    lines += [f"a=ice-ufrag:{local.ice_ufrag}", f"a=ice-pwd:{local.ice_pwd}"]
    lines += ["a=ice-options:trickle", f"a=fingerprint:{local.fingerprint.serialize()}"]
    lines += [f"a=setup:{plan.setup}", f"a=mid:{section.mid}"]
    if is_video and plan.h264 is not None:
        lines += _video_lines(plan.h264, plan.send_video, local, plan.transport_cc_id)
    elif section.kind == "application":
        lines += [
            f"a=sctp-port:{ANSWER_SCTP_PORT}",
            f"a=max-message-size:{ANSWER_MAX_MESSAGE_SIZE}",
        ]
    else:  # the inactive placeholder: its first payload type, as offered
        lines += ["a=inactive", "a=rtcp-mux"]
        index = AttributeIndex(section.attributes, section.label)
        for name in ("rtpmap", "fmtp"):
            values = dict.fromkeys(index.values(name))
            lines += [f"a={name}:{v}" for v in values if v.split(" ", 1)[0] == formats]
    return lines


def _video_lines(
    fmt: H264Format, send: bool, local: LocalDescription, transport_cc_id: int | None
) -> list[str]:
    pt = fmt.payload_type
    lines = ["a=sendonly" if send else "a=inactive"]
    if send:
        lines.append(f"a=msid:{local.msid[0]} {local.msid[1]}")
    if transport_cc_id is not None:
        lines.append(f"a=extmap:{transport_cc_id} {TRANSPORT_CC_URI}")
    lines += ["a=rtcp-mux", f"a=rtpmap:{pt} H264/90000"]
    lines += [f"a=rtcp-fb:{pt} {fb}" for fb in fmt.rtcp_fb]
    lines.append(f"a=fmtp:{pt} {fmtp(fmt)}")
    rtx = fmt.rtx_payload_type
    if rtx is not None:
        lines += [f"a=rtpmap:{rtx} rtx/90000", f"a=fmtp:{rtx} apt={pt}"]
    if send:
        if rtx is not None and local.rtx_ssrc is not None:
            lines.append(f"a=ssrc-group:FID {local.ssrc} {local.rtx_ssrc}")
        lines.append(f"a=ssrc:{local.ssrc} cname:{local.cname}")
        if rtx is not None and local.rtx_ssrc is not None:
            lines.append(f"a=ssrc:{local.rtx_ssrc} cname:{local.cname}")
    return lines
