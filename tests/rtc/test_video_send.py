"""The video sender inside a real PeerSession: transport-wide sequence numbers, pacing, RTX,
feedback to the estimator, and the pacer's keyframe requests. Virtual time throughout; the
far end is a real DTLS/SRTP endpoint that decrypts what the session sends."""

from __future__ import annotations

import struct

from agent.rtc import rtcp
from agent.rtc.dtls import DtlsRole, DtlsTransport, SrtpProfile
from agent.rtc.h264 import packetize, starts_keyframe
from agent.rtc.peer import KeyframeRequested, PeerSession, VideoSendParams
from agent.rtc.rtp import RtpPacket
from agent.rtc.video_send import RTX_BURST
from tests.rtc.test_peer import (
    AGENT_CERT,
    IDR_NALS,
    P_NALS,
    VIEWER_CERT,
    Viewer,
    events,
    handshake,
)

SSRC, RTX_SSRC = 0x11223344, 0x55667788
PT, RTX_PT, TWCC_ID = 102, 103, 3


def make_pair(*, rtx: bool = True, start_bitrate: int = 1_000_000) -> tuple[PeerSession, Viewer]:
    video = VideoSendParams(
        PT,
        SSRC,
        "cam",
        transport_cc_id=TWCC_ID,
        rtx_payload_type=RTX_PT if rtx else None,
        rtx_ssrc=RTX_SSRC if rtx else None,
        start_bitrate=start_bitrate,
        max_bitrate=2_000_000,
    )
    peer = PeerSession(
        certificate=AGENT_CERT,
        dtls_role=DtlsRole.CLIENT,
        remote_fingerprints=[("sha-256", VIEWER_CERT.fingerprint("sha-256"))],
        video=video,
        srtp_profiles=[SrtpProfile.AEAD_AES_128_GCM],
    )
    viewer = Viewer(
        DtlsTransport(VIEWER_CERT, DtlsRole.SERVER, [("sha-256", AGENT_CERT.fingerprint())])
    )
    handshake(peer, viewer)
    events(peer)
    return peer, viewer


def drain(peer: PeerSession, viewer: Viewer, now: float, until: float) -> float:
    """Run the peer's timers up to `until`, delivering what it sends; returns the time."""
    while (timer := peer.get_timer()) is not None and timer <= until:
        now = max(now, timer)
        peer.handle_timer(now)
        viewer.deliver(peer.datagrams_to_send(), now)
    return now


def rtp_received(viewer: Viewer) -> list[RtpPacket]:
    assert viewer.srtp is not None
    packets = []
    for datagram in viewer.received:
        if 192 <= datagram[1] <= 223:
            continue  # RTCP (sender reports)
        packets.append(RtpPacket.parse(viewer.srtp.unprotect(datagram)))
    return packets


def transport_seq(packet: RtpPacket) -> int:
    elements = dict(packet.header.extension_elements())
    value: int = struct.unpack("!H", elements[TWCC_ID])[0]
    return value


# An FU-A fragment of a non-IDR slice, 1200 bytes: what a big delta frame is made of.
FILLER = bytes((0x7C, 0x01)) + bytes(1198)


def big_keyframe() -> list[bytes]:
    # Forty 1200-byte payloads more: a 720p-sized IDR, so pacing has something to spread.
    return packetize(IDR_NALS) + [FILLER] * 40


def test_every_packet_carries_consecutive_transport_sequence_numbers_in_send_order() -> None:
    peer, viewer = make_pair()
    now = 0.0
    for index in range(10):
        now = index / 30
        peer.send_frame(packetize(IDR_NALS if index == 0 else P_NALS), index * 3000, now)
        viewer.deliver(peer.datagrams_to_send(), now)
        now = drain(peer, viewer, now, now + 1 / 30)
    packets = rtp_received(viewer)
    assert len(packets) == peer.stats.packets_sent > 10
    seqs = [transport_seq(p) for p in packets]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    media = [p.header.sequence_number for p in packets]
    assert media == [(media[0] + i) & 0xFFFF for i in range(len(media))]


def test_a_large_keyframe_is_paced_not_sent_in_one_burst() -> None:
    peer, viewer = make_pair(start_bitrate=500_000)
    payloads = big_keyframe()
    peer.send_frame(payloads, 0, 0.0)
    first = len(peer.datagrams_to_send())
    assert 0 < first < len(payloads)
    timer = peer.get_timer()
    assert timer is not None and timer > 0.0
    end = drain(peer, viewer, 0.0, 5.0)
    assert first + len(rtp_received(viewer)) == len(payloads)
    # ~50 KB at 2.5 x 500 kbit/s takes about a third of a second, not zero.
    assert end > 0.1


def test_a_nack_is_answered_on_the_rtx_stream_with_the_original_sequence_number() -> None:
    peer, viewer = make_pair()
    peer.send_frame(packetize(IDR_NALS), 0, 0.0)
    viewer.deliver(peer.datagrams_to_send(), 0.0)
    drain(peer, viewer, 0.0, 1.0)
    original = rtp_received(viewer)[1]
    viewer.received.clear()
    nack = rtcp.GenericNack.from_lost(1, SSRC, [original.header.sequence_number])
    assert viewer.srtp is not None
    peer.receive(viewer.srtp.protect_rtcp(rtcp.serialize_compound([nack])), 1.0)
    viewer.deliver(peer.datagrams_to_send(), 1.0)
    drain(peer, viewer, 1.0, 2.0)
    [rtx] = [p for p in rtp_received(viewer) if p.header.ssrc == RTX_SSRC]
    assert rtx.header.payload_type == RTX_PT
    assert rtx.header.timestamp == original.header.timestamp
    assert rtx.payload[:2] == struct.pack("!H", original.header.sequence_number)
    assert rtx.payload[2:] == original.payload
    assert peer.stats.retransmits == peer.stats.rtx_packets_sent == 1


def test_without_rtx_the_original_srtp_packet_is_resent() -> None:
    peer, viewer = make_pair(rtx=False)
    peer.send_frame(packetize(IDR_NALS), 0, 0.0)
    viewer.deliver(peer.datagrams_to_send(), 0.0)
    drain(peer, viewer, 0.0, 1.0)
    sent = list(viewer.received)
    original = rtp_received(viewer)[0]
    nack = rtcp.GenericNack.from_lost(1, SSRC, [original.header.sequence_number])
    assert viewer.srtp is not None
    peer.receive(viewer.srtp.protect_rtcp(rtcp.serialize_compound([nack])), 1.0)
    assert sent[0] in peer.datagrams_to_send()
    assert peer.stats.retransmits == 1 and peer.stats.rtx_packets_sent == 0


def test_remb_lowers_the_estimate_and_the_pacer_then_drops_to_a_keyframe_request() -> None:
    peer, viewer = make_pair()
    assert viewer.srtp is not None
    remb = rtcp.Remb(sender_ssrc=1, bitrate=100_000, ssrcs=(SSRC,))
    peer.receive(viewer.srtp.protect_rtcp(rtcp.serialize_compound([remb])), 0.0)
    assert peer.sender is not None and peer.sender.target_bitrate <= 100_000
    now = 0.0
    requests = []
    for index in range(60):  # 2 s of 50 KB frames into a 100 kbit/s estimate
        now = index / 30
        peer.send_frame(big_keyframe() if index == 0 else [FILLER] * 40, index * 3000, now)
        viewer.deliver(peer.datagrams_to_send(), now)
        requests += [e for e in events(peer) if isinstance(e, KeyframeRequested)]
        now = drain(peer, viewer, now, now + 1 / 30)
    assert peer.stats.frames_dropped > 0
    assert requests and requests[0].reason == "pacer dropped frames"
    # Dropped frames used no sequence numbers: the viewer sees no gap to NACK.
    media = [p.header.sequence_number for p in rtp_received(viewer) if p.header.ssrc == SSRC]
    assert media == [(media[0] + i) & 0xFFFF for i in range(len(media))]


def test_starts_keyframe_tells_idr_access_units_from_delta_ones() -> None:
    assert starts_keyframe(packetize(IDR_NALS))
    assert not starts_keyframe(packetize(P_NALS))
    assert not starts_keyframe([FILLER, FILLER])
    assert not starts_keyframe([])


def test_a_viewer_below_the_floor_waits_for_the_streams_own_keyframes() -> None:
    peer, viewer = make_pair()
    assert viewer.srtp is not None and peer.sender is not None
    remb = rtcp.Remb(sender_ssrc=1, bitrate=100_000, ssrcs=(SSRC,))
    peer.receive(viewer.srtp.protect_rtcp(rtcp.serialize_compound([remb])), 0.0)
    peer.sender.below_floor = True
    requests = []
    for index in range(60):
        now = index / 30
        peer.send_frame(big_keyframe() if index == 0 else [FILLER] * 40, index * 3000, now)
        viewer.deliver(peer.datagrams_to_send(), now)
        requests += [e for e in events(peer) if isinstance(e, KeyframeRequested)]
        drain(peer, viewer, now, now + 1 / 30)
    assert peer.stats.frames_dropped > 0 and requests == []


def test_a_keyframe_packet_that_cannot_be_resent_asks_for_a_new_keyframe() -> None:
    peer, viewer = make_pair(rtx=False, start_bitrate=2_000_000)
    now = 0.0
    for index in range(45):  # keyframes only: over RTX_BURST packets in the history
        now = index / 30
        peer.send_frame(packetize(IDR_NALS), index * 3000, now)
        viewer.deliver(peer.datagrams_to_send(), now)
        now = drain(peer, viewer, now, now + 1 / 30)
    seqs = [p.header.sequence_number for p in rtp_received(viewer)]
    assert len(seqs) > RTX_BURST
    events(peer)
    nack = rtcp.GenericNack.from_lost(1, SSRC, seqs)
    assert viewer.srtp is not None
    peer.receive(viewer.srtp.protect_rtcp(rtcp.serialize_compound([nack])), now + 0.1)
    assert peer.stats.retransmits == RTX_BURST and peer.stats.retransmits_refused > 0
    assert KeyframeRequested("lost keyframe packet") in events(peer)


def test_the_nack_history_holds_about_a_second_at_the_streams_highest_bitrate() -> None:
    from agent.rtc.video_send import HISTORY_MAX, HISTORY_MIN, history_size

    assert history_size(2_000_000) == 256  # 208 packets of 1200 bytes a second
    assert history_size(8_000_000) == 1024
    assert history_size(50_000) == HISTORY_MIN
    assert history_size(100_000_000) == HISTORY_MAX
    for bitrate in range(50_000, 20_000_000, 250_000):
        size = history_size(bitrate)
        assert size & (size - 1) == 0  # a mask of the sequence number
        assert size >= min(HISTORY_MAX, bitrate / 9600)
