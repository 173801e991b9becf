"""The answer's choices: DTLS setup, the H.264 format (profile policy), the sections accepted.

PROTOCOL.md section 4: one BUNDLE transport with rtcp-mux, one sendonly H.264 video section
and an SCTP datachannel section; everything else is rejected, except an unwanted BUNDLE tag
section (accepted inactive, see `negotiate`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from agent.rtc.h264_profile import (
    H264Format,
    answer_format,
    choose_format,
    h264_profile,
    profile_display_name,
)

from .errors import LocalUsageError, NegotiationError
from .model import Direction, MediaSection, Setup
from .parse import Offer

RTP_PROTOCOL = "UDP/TLS/RTP/SAVPF"
SCTP_PROTOCOL = "UDP/DTLS/SCTP"
DATACHANNEL_FORMAT = "webrtc-datachannel"
# Feedback the device acts on as a sender (transport-cc and goog-remb feed the bandwidth
# estimator; nack is answered from the send history, RTX when negotiated).
IMPLEMENTED_RTCP_FB = ("nack", "nack pli", "ccm fir", "goog-remb", "transport-cc")
# The header extension carrying the transport-wide sequence number TWCC feedback refers to.
TRANSPORT_CC_URI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
# The one-byte form (RFC 8285 4.2) holds ids 1-14; our stamper writes only that form.
MAX_ONE_BYTE_EXTENSION_ID = 14

# Profiles whose decoders also decode a stream of the key profile, closest first (H.264
# A.2: a constrained-baseline stream is a valid baseline, main, constrained-high and high
# stream; a main one a valid high one; and High 4:4:4 Predictive decoders decode High, which
# is what Debian's Chromium offers as its only "high" f4001f). An offer without the stream's
# own profile is answered with the first of these it has; never with one that could not
# decode the stream.
DECODED_ALSO_BY: dict[str, tuple[str, ...]] = {
    "constrained-baseline": (
        "baseline",
        "main",
        "constrained-high",
        "high",
        "predictive-high-444",
    ),
    "main": ("high", "predictive-high-444"),
    "high": ("predictive-high-444",),
}


class PreferredSetup(StrEnum):
    """The DTLS role the device wants when the offer lets it choose (webrtc.dtls_role).

    AUTO answers actpass with active (RFC 8842 recommends the answerer be the DTLS client),
    and an active or passive offer with the only valid answer. ACTIVE and PASSIVE insist:
    an offer that needs the other role is refused.
    """

    AUTO = "auto"
    ACTIVE = "active"
    PASSIVE = "passive"


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


def answer_setup(offer_setup: str, preferred: PreferredSetup | str | None = None) -> Setup:
    """The answer's a=setup for an offer's; `preferred` if compatible (None means AUTO).

    A conflicting explicit preference, or an offer of holdconn, raises NegotiationError.
    """
    wanted = preferred_setup(preferred)
    if offer_setup == Setup.ACTPASS:
        return Setup.PASSIVE if wanted is PreferredSetup.PASSIVE else Setup.ACTIVE
    required = {"active": Setup.PASSIVE, "passive": Setup.ACTIVE}.get(str(offer_setup))
    if required is None:
        raise NegotiationError(f"offer a=setup:{offer_setup} cannot be answered")
    if wanted not in (PreferredSetup.AUTO, required):
        raise NegotiationError(
            f"offer a=setup:{offer_setup} needs answer a=setup:{required}, not {wanted}"
        )
    return required


def select_h264(section: MediaSection, stream_profile_level_id: str) -> H264Format:
    """The offered H.264 format to send the stream with (packetization-mode=1 always).

    The stream's own profile where offered (levels may differ), else the closest offered
    profile that decodes it (DECODED_ALSO_BY); within a profile the first with rtcp-fb nack
    and nack pli, else the first. Raises NegotiationError naming the profiles otherwise.
    """
    try:
        wanted = h264_profile(stream_profile_level_id)
    except ValueError as exc:
        raise NegotiationError(f"stream {exc}") from None
    acceptable = (wanted, *DECODED_ALSO_BY.get(wanted, ()))
    for profile in acceptable:
        chosen = choose_format(section.h264, profile)
        if chosen is not None:
            return chosen
    also = DECODED_ALSO_BY.get(wanted)
    alternatives = f" or one that decodes it ({', '.join(also)})" if also else ""
    raise NegotiationError(
        f"no H.264 payload type with profile {stream_profile_level_id[:4].lower()} "
        f"({profile_display_name(wanted)}){alternatives} and packetization-mode=1 in "
        f"{section.label}"
    )


@dataclass(frozen=True)
class Plan:
    """What the answer accepts: sections in answer BUNDLE order (the tag first), the video
    format as answered, the DTLS role, whether video is sent, and the transport-cc header
    extension id (None: not negotiated)."""

    setup: Setup
    accepted: list[MediaSection]
    video: MediaSection | None
    h264: H264Format | None
    application: MediaSection | None
    send_video: bool
    transport_cc_id: int | None = None


def _usable(section: MediaSection, transport: list[MediaSection], protocol: str) -> None:
    if all(section is not s for s in transport):
        raise NegotiationError(
            f"{section.label} is not bundled with the transport (a=group:BUNDLE)"
        )
    if section.protocol != protocol:
        raise NegotiationError(f"{section.label} uses {section.protocol}, need {protocol}")


def _video_format(
    video: MediaSection, transport: list[MediaSection], stream_profile_level_id: str, rtx: bool
) -> H264Format:
    _usable(video, transport, RTP_PROTOCOL)
    if not video.rtcp_mux:
        raise NegotiationError(f"{video.label} has no a=rtcp-mux")
    offered = select_h264(video, stream_profile_level_id)
    try:
        return answer_format(offered, stream_profile_level_id, IMPLEMENTED_RTCP_FB, rtx=rtx)
    except ValueError as exc:
        raise NegotiationError(f"{video.label}: {exc}") from None


def transport_cc_extension(video: MediaSection) -> int | None:
    """The offered transport-cc extension id if we can send it (one-byte form), else None.

    An extension the offerer only sends (sendonly from its side) is of no use to a sender.
    """
    for extmap in video.extmaps:
        if extmap.uri != TRANSPORT_CC_URI or extmap.id > MAX_ONE_BYTE_EXTENSION_ID:
            continue
        if extmap.direction in (None, Direction.SENDRECV, Direction.RECVONLY):
            return extmap.id
    return None


def can_hold(section: MediaSection) -> bool:
    """Whether an unwanted section can be answered accepted-but-inactive (see negotiate)."""
    if section.kind == "application":
        return section.protocol == SCTP_PROTOCOL and DATACHANNEL_FORMAT in section.formats
    rtp = section.protocol == RTP_PROTOCOL and section.rtcp_mux
    return rtp and section.kind in ("audio", "video")


def negotiate(
    offer: Offer,
    preferred: PreferredSetup,
    stream_profile_level_id: str,
    accept_datachannel: bool,
    rtx: bool = False,
) -> Plan:
    """The choices for answering `offer`; raises NegotiationError when it cannot be answered.

    `rtx`: answer the chosen format's offered RTX payload type (RFC 4588), if it has one.
    """
    if offer.ice_lite:
        raise NegotiationError(
            "ice-lite offers are not supported: the device cannot be the controlling agent"
        )
    setup = answer_setup(offer.setup, preferred)
    transport = offer.transport_sections
    video = offer.video
    application = offer.application if accept_datachannel else None
    chosen = (
        None if video is None else _video_format(video, transport, stream_profile_level_id, rtx)
    )
    transport_cc_id = None if video is None else transport_cc_extension(video)
    if chosen is not None and transport_cc_id is None and "transport-cc" in chosen.rtcp_fb:
        # Feedback about sequence numbers we cannot stamp would be empty: not answered.
        chosen = replace(chosen, rtcp_fb=tuple(f for f in chosen.rtcp_fb if f != "transport-cc"))
    accepted = [] if video is None else [video]
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
    if tag is not None and all(tag is not s for s in accepted) and can_hold(tag):
        accepted.append(tag)
    accepted.sort(key=lambda s: (s is not tag, s.index))  # the tag first, as RFC 8843 wants
    return Plan(
        setup=setup,
        accepted=accepted,
        video=video,
        h264=chosen,
        application=application,
        send_video=video is not None and video.receives,
        transport_cc_id=transport_cc_id,
    )
