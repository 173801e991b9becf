"""PeerSession in virtual time, against a real DTLS server and SRTP context as the viewer."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.rtc import rtcp
from agent.rtc.certificate import Certificate
from agent.rtc.dtls import DtlsRole, DtlsState, DtlsTransport, SrtpProfile
from agent.rtc.h264 import Depacketizer, packetize
from agent.rtc.peer import (
    SR_INTERVAL,
    KeyframeRequested,
    PeerClosed,
    PeerConnected,
    PeerFailed,
    PeerSession,
    PeerState,
    VideoSendParams,
)
from agent.rtc.rtp import RtpPacket
from agent.rtc.srtp import SrtpContext
from agent.rtc.video_send import RTX_BURST, RTX_RATE, history_size
from hw.annexb import split_nal_units

DATA = Path(__file__).parent / "data"
IDR = (DATA / "h264_baseline_320x240_idr.h264").read_bytes()
P_FRAME = (DATA / "h264_baseline_320x240_p.h264").read_bytes()
IDR_NALS = split_nal_units(IDR)
P_NALS = split_nal_units(P_FRAME)
AGENT_CERT = Certificate.generate()
VIEWER_CERT = Certificate.generate()
SSRC = 0x11223344


@dataclass
class Viewer:
    """The far end: a DTLS server (as a browser answering 'active') plus its SRTP context."""

    dtls: DtlsTransport
    srtp: SrtpContext | None = None
    received: list[bytes] = field(default_factory=list)

    def deliver(self, datagrams: list[bytes], now: float) -> None:
        for datagram in datagrams:
            if 20 <= datagram[0] <= 63:
                self.dtls.receive(datagram, now)
            else:
                self.received.append(datagram)
        if self.srtp is None and self.dtls.state is DtlsState.CONNECTED:
            assert self.dtls.srtp_keys is not None
            self.srtp = SrtpContext(self.dtls.srtp_keys)


def make_pair(
    fingerprint: str | None = None, profile: SrtpProfile = SrtpProfile.AEAD_AES_128_GCM
) -> tuple[PeerSession, Viewer]:
    peer = PeerSession(
        certificate=AGENT_CERT,
        dtls_role=DtlsRole.CLIENT,
        remote_fingerprints=[("sha-256", fingerprint or VIEWER_CERT.fingerprint("sha-256"))],
        # A 2 Mbit/s estimate (no feedback in these tests changes it): paced at 5 Mbit/s.
        video=VideoSendParams(102, SSRC, "cam", start_bitrate=2_000_000, max_bitrate=2_000_000),
        srtp_profiles=[profile],
        wallclock_offset=1_700_000_000.0,
    )
    viewer = Viewer(
        DtlsTransport(VIEWER_CERT, DtlsRole.SERVER, [("sha-256", AGENT_CERT.fingerprint())])
    )
    return peer, viewer


def handshake(peer: PeerSession, viewer: Viewer, now: float = 0.0) -> None:
    peer.start(now)
    for _ in range(10):
        viewer.deliver(peer.datagrams_to_send(), now)
        for datagram in viewer.dtls.datagrams_to_send():
            peer.receive(datagram, now)
        if peer.state is not PeerState.CONNECTING:
            return
    raise AssertionError("handshake did not finish")


def is_rtp(datagram: bytes) -> bool:
    return datagram[0] >= 128 and not 192 <= datagram[1] <= 223


def paced(peer: PeerSession, until: float) -> list[bytes]:
    """What the peer sends now and as its pacer's timers run, up to `until` (RTP only)."""
    out = peer.datagrams_to_send()
    while (timer := peer.get_timer()) is not None and timer <= until:
        peer.handle_timer(timer)
        out += peer.datagrams_to_send()
    return [d for d in out if is_rtp(d)]


def send_frames(peer: PeerSession, frames: list[list[bytes]], start: float) -> list[bytes]:
    """Send `frames` at 30 frames/s from `start`, the pacer drained in between; RTP sent."""
    sent: list[bytes] = []
    for index, payloads in enumerate(frames):
        now = start + index / 30
        peer.send_frame(payloads, index * 3000, now=now)
        sent += paced(peer, now + 1 / 30 - 1e-6)
    return sent


def events(peer: PeerSession) -> list[object]:
    out = []
    while (event := peer.next_event()) is not None:
        out.append(event)
    return out


@pytest.mark.parametrize("profile", list(SrtpProfile), ids=lambda p: p.name)
def test_connects_and_sends_frames_the_viewer_can_decrypt_and_reassemble(
    profile: SrtpProfile,
) -> None:
    peer, viewer = make_pair(profile=profile)
    handshake(peer, viewer)
    assert events(peer) == [PeerConnected(profile.name)]
    depacketizer = Depacketizer()
    units = []
    viewer.deliver(send_frames(peer, [packetize(IDR_NALS), packetize(P_NALS)], 0.0), 0.1)
    assert viewer.srtp is not None
    for datagram in viewer.received:
        packet = RtpPacket.parse(viewer.srtp.unprotect(datagram))
        assert packet.header.ssrc == SSRC and packet.header.payload_type == 102
        unit = depacketizer.feed(
            packet.payload,
            packet.header.marker,
            packet.header.timestamp,
            packet.header.sequence_number,
        )
        if unit is not None:
            units.append(unit)
    assert units == [tuple(n for n in f if n[0] & 0x1F != 9) for f in (IDR_NALS, P_NALS)]
    assert peer.stats.frames_sent == 2


def test_fingerprint_mismatch_fails_without_srtp_and_sends_no_media() -> None:
    peer, viewer = make_pair(fingerprint=Certificate.generate().fingerprint("sha-256"))
    handshake(peer, viewer)
    assert peer.state is PeerState.FAILED
    assert events(peer) == [PeerFailed("dtls fingerprint mismatch")]
    assert not peer.srtp_ready
    peer.send_frame(packetize(IDR_NALS), 0, now=0.0)
    assert [d for d in peer.datagrams_to_send() if d[0] >= 128] == []
    assert peer.get_timer() is None


def test_pli_and_fir_for_our_stream_ask_for_a_keyframe() -> None:
    peer, viewer = make_pair()
    handshake(peer, viewer)
    events(peer)
    assert viewer.srtp is not None
    packets = [
        rtcp.PictureLossIndication(sender_ssrc=1, media_ssrc=SSRC),
        rtcp.FullIntraRequest(sender_ssrc=1, entries=((SSRC, 1),)),
        rtcp.FullIntraRequest(sender_ssrc=1, entries=((SSRC, 1),)),  # retransmitted: same seq
        rtcp.PictureLossIndication(sender_ssrc=1, media_ssrc=0x999),  # not our stream
        rtcp.FullIntraRequest(sender_ssrc=1, entries=((0x999, 2),)),
    ]
    for packet in packets:
        peer.receive(viewer.srtp.protect_rtcp(rtcp.serialize_compound([packet])), 1.0)
    assert events(peer) == [KeyframeRequested("pli"), KeyframeRequested("fir")]
    assert peer.stats.keyframe_requests == 2


def test_nack_is_answered_with_the_same_srtp_bytes() -> None:
    peer, viewer = make_pair()
    handshake(peer, viewer)
    sent = send_frames(peer, [packetize(IDR_NALS)], 0.0)
    assert viewer.srtp is not None
    seqs = [RtpPacket.parse(viewer.srtp.unprotect(d)).header.sequence_number for d in sent]
    nack = rtcp.GenericNack.from_lost(1, SSRC, [seqs[1], seqs[2], (seqs[-1] + 5) & 0xFFFF])
    peer.receive(viewer.srtp.protect_rtcp(rtcp.serialize_compound([nack])), 0.1)
    assert peer.datagrams_to_send() == [sent[1], sent[2]]  # unknown seq: nothing
    assert peer.stats.retransmits == 2 and peer.stats.nacks_received == 1


def test_sender_reports_at_exact_deadlines_and_rtt_from_receiver_reports() -> None:
    peer, viewer = make_pair()
    handshake(peer, viewer, now=10.0)
    assert peer.get_timer() == pytest.approx(10.0 + SR_INTERVAL / 2)
    send_frames(peer, [packetize(IDR_NALS)], 10.2)
    paced(peer, 10.45)
    peer.handle_timer(10.5)
    assert peer.get_timer() == pytest.approx(10.5 + SR_INTERVAL)
    assert viewer.srtp is not None
    (report_bytes,) = peer.datagrams_to_send()
    report, sdes = rtcp.parse_compound(viewer.srtp.unprotect_rtcp(report_bytes))
    assert isinstance(report, rtcp.SenderReport) and isinstance(sdes, rtcp.SourceDescription)
    assert report.ssrc == SSRC and report.packet_count == peer.stats.packets_sent
    # The viewer answers 50 ms later having held the SR for 20 ms: RTT 30 ms.
    block = rtcp.ReportBlock(
        ssrc=SSRC,
        fraction_lost=64,
        cumulative_lost=3,
        highest_sequence=1,
        jitter=7,
        lsr=rtcp.ntp_middle32(report.ntp_timestamp),
        dlsr=rtcp.ntp_short_from_seconds(0.020),
    )
    receiver_report = rtcp.ReceiverReport(ssrc=1, reports=(block,))
    peer.receive(viewer.srtp.protect_rtcp(rtcp.serialize_compound([receiver_report])), 10.55)
    assert peer.stats.rtt == pytest.approx(0.030, abs=0.001)
    assert peer.stats.fraction_lost == 0.25 and peer.stats.jitter == 7


def test_bye_from_the_viewer_closes_and_close_says_goodbye() -> None:
    peer, viewer = make_pair()
    handshake(peer, viewer)
    events(peer)
    assert viewer.srtp is not None
    report = rtcp.ReceiverReport(ssrc=1, reports=())
    peer.receive(viewer.srtp.protect_rtcp(rtcp.serialize_compound([report])), 0.5)
    # A BYE for some other source changes nothing...
    other = rtcp.serialize_compound([rtcp.Bye(ssrcs=(0xDEADBEEF,))])
    peer.receive(viewer.srtp.protect_rtcp(other), 0.9)
    assert events(peer) == [] and peer.state is PeerState.CONNECTED
    # ...the viewer's own does, and a NACK after it in the same compound is ignored.
    last = send_frames(peer, [packetize(IDR_NALS)], 0.95)[-1]
    nack = rtcp.GenericNack.from_lost(
        1, SSRC, [RtpPacket.parse(viewer.srtp.unprotect(last)).header.sequence_number]
    )
    bye = rtcp.serialize_compound([rtcp.Bye(ssrcs=(1,)), nack])
    peer.receive(viewer.srtp.protect_rtcp(bye), 1.0)
    assert events(peer) == [PeerClosed("rtcp bye from peer")]
    assert peer.stats.retransmits == 0

    peer, viewer = make_pair()
    handshake(peer, viewer)
    events(peer)
    peer.close(2.0, "closed by client")
    viewer.deliver(peer.datagrams_to_send(), 2.0)
    assert viewer.dtls.state is DtlsState.CLOSED
    assert events(peer) == [PeerClosed("closed by client")]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_is_dropped_and_counted_never_raised(data: bytes) -> None:
    peer, viewer = make_pair()
    handshake(peer, viewer)
    events(peer)
    peer.receive(data, 1.0)
    peer.receive(b"\x80\xc8" + data, 1.0)  # looks like RTCP, fails SRTCP authentication
    assert peer.state in (PeerState.CONNECTED, PeerState.FAILED, PeerState.CLOSED)
    assert peer.stats.bad_packets >= 1


def test_nacks_cannot_amplify_retransmissions() -> None:
    peer, viewer = make_pair()
    handshake(peer, viewer)
    sent = send_frames(peer, [packetize(IDR_NALS)] * 4, 0.0)
    assert viewer.srtp is not None and len(sent) >= 34
    first = RtpPacket.parse(viewer.srtp.unprotect(sent[0])).header.sequence_number
    # One NACK naming the same 34 packets 30 times over (PIDs with full BLPs, repeated).
    fci = rtcp.GenericNack.from_lost(1, SSRC, range(first, first + 34))
    storm = rtcp.GenericNack(1, SSRC, tuple(fci.lost) * 30)
    peer.receive(viewer.srtp.protect_rtcp(rtcp.serialize_compound([storm])), 0.1)
    assert len(peer.datagrams_to_send()) == 34  # each packet once
    # Repeated within the spacing: nothing more; after it, the budget still bounds it.
    peer.receive(viewer.srtp.protect_rtcp(rtcp.serialize_compound([storm])), 0.11)
    assert peer.datagrams_to_send() == []
    total = 0
    for step in range(1, 400):
        now = 0.1 + step * 0.031
        peer.receive(viewer.srtp.protect_rtcp(rtcp.serialize_compound([storm])), now)
        total += len(peer.datagrams_to_send())
    elapsed = 399 * 0.031
    assert total <= RTX_BURST + RTX_RATE * elapsed
    assert peer.stats.retransmits_refused > 0


def test_bad_packets_are_logged_within_a_budget(caplog: pytest.LogCaptureFixture) -> None:
    peer, viewer = make_pair()
    handshake(peer, viewer)
    assert viewer.srtp is not None
    for length in range(1, 200):
        # Authenticated RTCP with a different malformation each time.
        junk = bytes([0x80, 201, 0, length + 1]) + b"\x00\x00\x00\x01"
        peer.receive(viewer.srtp.protect_rtcp(junk), 1.0)
        peer.receive(bytes([7]) + bytes(length), 1.0)
    assert peer.stats.bad_packets == 2 * 199
    assert len([r for r in caplog.records if "dropped a packet" in r.message]) <= 12


def test_the_retransmission_budget_refills_to_rtx_burst_at_most_after_an_idle_period() -> None:
    peer, viewer = make_pair()
    handshake(peer, viewer)
    payloads = packetize(IDR_NALS)
    # More packets than one burst may resend, all still in the history.
    frames = history_size(2_000_000) // len(payloads)
    sent = send_frames(peer, [payloads] * frames, 0.0)
    assert viewer.srtp is not None and RTX_BURST < len(sent) <= history_size(2_000_000)
    first = RtpPacket.parse(viewer.srtp.unprotect(sent[0])).header.sequence_number
    nack = rtcp.serialize_compound(
        [rtcp.GenericNack.from_lost(1, SSRC, range(first, first + len(sent)))]
    )
    peer.receive(viewer.srtp.protect_rtcp(nack), 2.0)
    assert len(peer.datagrams_to_send()) == RTX_BURST  # the budget a session starts with
    # Idle for far longer than a refill takes: the budget is full again, but no fuller.
    peer.receive(viewer.srtp.protect_rtcp(nack), 2.0 + 100 * RTX_BURST / RTX_RATE)
    assert len(peer.datagrams_to_send()) == RTX_BURST
    assert peer.stats.retransmits == 2 * RTX_BURST
    assert peer.stats.retransmits_refused == 2 * (len(sent) - RTX_BURST)
