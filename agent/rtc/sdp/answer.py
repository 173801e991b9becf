"""build_answer: parse-side model + negotiation + writer, and the Answer it returns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agent.rtc.h264_profile import H264Format, profile_level_id_level

from .errors import LocalUsageError
from .model import Fingerprint, Setup
from .negotiate import PreferredSetup, negotiate, preferred_setup
from .parse import Offer
from .write import LocalDescription, write_answer


@dataclass(frozen=True)
class Answer:
    """The answer SDP and what it negotiated.

    `h264` is the format as answered (our level, only the feedback we answered, the rtx
    payload type when RTX was answered), or None when no video is accepted.
    `transport_cc_id` is the answered transport-wide sequence number extension id (None: no
    transport-cc); `rtx_ssrc` the RTX stream's SSRC when RTX was answered. `mids` are the
    accepted mids (an inactive tag included) in BUNDLE order; the first, `transport_mid`,
    names the offer section whose candidates (`remote_candidates`) the one transport uses:
    trickled remote candidates for other mids belong to transports BUNDLE discards.
    """

    sdp: str
    h264: H264Format | None
    mids: list[str]
    video_mid: str | None
    send_video: bool
    datachannel_mid: str | None
    remote_sctp_port: int | None
    remote_max_message_size: int | None
    setup: Setup
    transport_mid: str
    remote_candidates: list[str]
    remote_end_of_candidates: bool
    transport_cc_id: int | None = None
    rtx_ssrc: int | None = None


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
    rtx_ssrc: int | None = None,
) -> Answer:
    """Build the answer PROTOCOL.md section 4 describes; raises NegotiationError if impossible.

    `setup` is the preferred DTLS role (a PreferredSetup or its value; None: AUTO);
    `candidates` are texts after "candidate:" for the transport section. With `rtx_ssrc`, an
    offered RTX payload type of the chosen format is answered (RFC 4588). Invalid local
    arguments (ours, not the peer's) raise LocalUsageError, never NegotiationError.
    """
    local = LocalDescription(
        ice_ufrag, ice_pwd, fingerprint, candidates, end_of_candidates, ssrc, cname, msid,
        session_id, rtx_ssrc,
    )  # fmt: skip
    try:
        profile_level_id_level(stream_profile_level_id)
    except ValueError as exc:
        raise LocalUsageError(f"invalid stream_profile_level_id: {exc}") from None
    plan = negotiate(
        offer,
        preferred_setup(setup),
        stream_profile_level_id,
        accept_datachannel,
        rtx=rtx_ssrc is not None,
    )
    first = plan.accepted[0]
    application, video = plan.application, plan.video
    return Answer(
        sdp=write_answer(offer, plan, local),
        h264=plan.h264,
        mids=[s.mid for s in plan.accepted],
        video_mid=video.mid if video else None,
        send_video=plan.send_video,
        datachannel_mid=application.mid if application else None,
        # RFC 8841: an offer without a=sctp-port uses 5000
        remote_sctp_port=(application.sctp_port or 5000) if application else None,
        remote_max_message_size=application.max_message_size if application else None,
        setup=plan.setup,
        transport_mid=first.mid,
        remote_candidates=list(first.candidates),
        remote_end_of_candidates=first.end_of_candidates,
        transport_cc_id=plan.transport_cc_id,
        rtx_ssrc=rtx_ssrc
        if plan.h264 is not None and plan.h264.rtx_payload_type is not None
        else None,
    )
