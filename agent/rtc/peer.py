"""One viewer's WebRTC session, sans-IO: DTLS-SRTP, RTP out, RTCP both ways.

ICE is not in here: the caller (agent/net) owns the aioice connection, hands every datagram
the pair receives to :meth:`PeerSession.receive`, and sends what
:meth:`PeerSession.datagrams_to_send` returns. Time comes in as ``now`` (seconds on the
caller's monotonic clock); ``wallclock_offset`` turns it into Unix time for RTCP's NTP fields.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from agent.rtc import rtcp
from agent.rtc.certificate import Certificate
from agent.rtc.datachannel import (
    DataChannelEvent,
    DataChannels,
    SctpParams,
    data_channels_for,
)
from agent.rtc.dtls import (
    DtlsApplicationData,
    DtlsClosed,
    DtlsConnected,
    DtlsFailed,
    DtlsRole,
    DtlsTransport,
    SrtpProfile,
)
from agent.rtc.h264 import starts_keyframe
from agent.rtc.srtp import SrtpContext
from agent.rtc.video_send import VideoSender
from agent.rtc.video_send import VideoSendParams as VideoSendParams  # peer's API too

logger = logging.getLogger(__name__)

# RFC 3550 leaves the interval to the sender; browsers compute A/V sync and RTT from SRs, so
# one a second is plenty and costs nothing.
SR_INTERVAL = 1.0
# The pacer's next packet is collected this much later, with whatever else is due by then:
# one wake-up per few packets instead of one per packet (each costs the event loop a timer
# and a send round). Under the pacer's 5 ms burst allowance, so it never slows the rate.
PACING_SLACK = 0.004
# Log at most this many bad packets per session and kind, and this many in all: a hostile
# or broken peer must not be able to fill the SD card with log lines.
MAX_LOGGED_BAD_PACKETS = 3
MAX_LOGGED_BAD_PACKETS_TOTAL = 12


class PeerState(enum.Enum):
    NEW = "new"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    FAILED = "failed"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class PeerConnected:
    """DTLS finished, the fingerprint matched and SRTP keys exist: media may flow."""

    srtp_profile: str


@dataclass(frozen=True, slots=True)
class PeerFailed:
    reason: str


@dataclass(frozen=True, slots=True)
class PeerClosed:
    reason: str


@dataclass(frozen=True, slots=True)
class KeyframeRequested:
    """The viewer needs an IDR: it sent a PLI or FIR, or its pacer dropped frames, or a
    keyframe packet it lost could not be resent."""

    reason: str


@dataclass(frozen=True, slots=True)
class ApplicationData:
    """Decrypted DTLS application data (SCTP for datachannels)."""

    data: bytes


PeerEvent = (
    PeerConnected | PeerFailed | PeerClosed | KeyframeRequested | ApplicationData | DataChannelEvent
)


@dataclass(slots=True)
class PeerStats:
    """Counters for session.list, telemetry and the benchmarks."""

    packets_sent: int = 0
    bytes_sent: int = 0
    payload_bytes_sent: int = 0
    frames_sent: int = 0
    retransmits: int = 0
    retransmits_refused: int = 0
    nacks_received: int = 0
    keyframe_requests: int = 0
    bad_packets: int = 0
    fraction_lost: float = 0.0
    jitter: int = 0
    rtt: float | None = None
    remb_bitrate: int | None = None
    # Bandwidth estimation and pacing (see agent/rtc/video_send.py).
    estimate: int | None = None
    bwe_state: str | None = None
    twcc_feedbacks: int = 0
    frames_dropped: int = 0
    rtx_packets_sent: int = 0
    pacer_queue_bytes: int = 0


class PeerSession:
    """One viewer: demultiplexes its datagrams, runs DTLS, protects and sends our video.

    Input: :meth:`start`, :meth:`receive`, :meth:`send_frame`, :meth:`handle_timer`,
    :meth:`close`. Output: :meth:`datagrams_to_send`, :meth:`next_event`, :meth:`get_timer`.
    """

    def __init__(
        self,
        *,
        certificate: Certificate,
        dtls_role: DtlsRole,
        remote_fingerprints: list[tuple[str, str]],
        video: VideoSendParams | None,
        wallclock_offset: float = 0.0,
        srtp_profiles: Sequence[SrtpProfile] | None = None,
        name: str = "peer",
        sctp: SctpParams | None = None,
    ) -> None:
        self.name = name
        self.state = PeerState.NEW
        self.stats = PeerStats()
        self._video = video
        self._wallclock_offset = wallclock_offset
        if srtp_profiles is None:
            self._dtls = DtlsTransport(certificate, dtls_role, remote_fingerprints)
        else:
            self._dtls = DtlsTransport(
                certificate, dtls_role, remote_fingerprints, srtp_profiles=list(srtp_profiles)
            )
        self._srtp: SrtpContext | None = None
        self._out: list[bytes] = []
        self._events: list[PeerEvent] = []
        self._bad_logged: dict[str, int] = {}

        self.sender = VideoSender(video) if video is not None else None
        self._remote_ssrcs: set[int] = set()
        self._bye_ssrcs: set[int] = set()
        self._last_fir_seq: int | None = None
        self._bad_logged_total = 0
        self._next_sr: float | None = None
        self._last_sr_ntp_mid: dict[int, float] = {}
        # With an m=application section the session owns the datachannels (call their methods
        # directly; their output leaves through ours); without, DTLS application data
        # surfaces as ApplicationData events.
        self.channels: DataChannels | None = (
            data_channels_for(sctp, dtls_client=dtls_role is DtlsRole.CLIENT, name=f"{name}/sctp")
            if sctp is not None
            else None
        )

    # --- input -------------------------------------------------------------------------

    def start(self, now: float) -> None:
        """ICE is connected: begin DTLS (the client sends its ClientHello now)."""
        if self.state is not PeerState.NEW:
            return
        self._set_state(PeerState.CONNECTING)
        self._dtls.start(now)
        self._pump_dtls(now)

    def receive(self, data: bytes, now: float) -> None:
        """One datagram from the ICE pair; demultiplexed by its first byte (RFC 7983)."""
        if self.state in (PeerState.FAILED, PeerState.CLOSED) or not data:
            return
        first = data[0]
        if 20 <= first <= 63:
            self._dtls.receive(data, now)
            self._pump_dtls(now)
        elif 128 <= first <= 191:
            if len(data) >= 2 and 192 <= data[1] <= 223:
                self._receive_rtcp(data, now)
            # RTP from the viewer: our answer is sendonly, so there is nothing to play.
        else:
            self._bad_packet("unknown first byte", now)

    def send_frame(self, payloads: Sequence[bytes], pts_90k: int, now: float) -> None:
        """Send one access unit, already packetized once for every viewer.

        The packets go through this viewer's pacer (see agent/rtc/video_send.py): what may
        leave now is in :meth:`datagrams_to_send` at once, the rest after :meth:`get_timer`.
        """
        sender = self.sender
        if self._srtp is None or sender is None or not payloads:
            return
        sender.send_frame(payloads, pts_90k, starts_keyframe(payloads), now)
        self._pace(now)

    def send_application_data(self, data: bytes) -> None:
        """Send DTLS application data (SCTP) once connected."""
        if self.state is PeerState.CONNECTED:
            self._dtls.send_application_data(data)
            self._out.extend(self._dtls.datagrams_to_send())

    def handle_timer(self, now: float) -> None:
        """Run whatever is due at ``now``: DTLS retransmission, RTCP reports, SCTP timers."""
        timer = self._dtls.get_timer()
        if timer is not None and now >= timer:
            self._dtls.handle_timer(now)
            self._pump_dtls(now)
        channels = self.channels
        if channels is not None and self.state is PeerState.CONNECTED:
            sctp_timer = channels.get_timer()
            if sctp_timer is not None and now >= sctp_timer:
                channels.handle_timer(now)
        if self._next_sr is not None and now >= self._next_sr:
            self._send_sender_report(now)
            self._next_sr = now + SR_INTERVAL
        if self._srtp is not None and self.sender is not None:
            self._pace(now)

    def close(self, now: float, reason: str = "closed") -> None:
        """Say goodbye (RTCP BYE, DTLS close_notify) and stop."""
        if self.state in (PeerState.FAILED, PeerState.CLOSED):
            return
        if self._srtp is not None and self._video is not None:
            bye = rtcp.Bye(ssrcs=(self._video.ssrc,))
            self._send_rtcp([bye])
        if self.channels is not None and self.state is PeerState.CONNECTED:
            self.channels.association.abort(reason, now)
            self._pump_sctp()
        self._dtls.close()
        self._out.extend(self._dtls.datagrams_to_send())
        self._finish(PeerState.CLOSED, PeerClosed(reason))

    # --- output ------------------------------------------------------------------------

    def datagrams_to_send(self) -> list[bytes]:
        """Everything to send on the ICE pair, in order; the list is handed over."""
        self._pump_sctp()
        out = self._out
        self._out = []
        return out

    def next_event(self) -> PeerEvent | None:
        if not self._events:
            self._pump_sctp()
        return self._events.pop(0) if self._events else None

    def get_timer(self) -> float | None:
        """The earliest ``now`` at which :meth:`handle_timer` has work, or None."""
        if self.state in (PeerState.FAILED, PeerState.CLOSED):
            return None
        sctp = self.channels.get_timer() if self.channels is not None else None
        if self.state is not PeerState.CONNECTED:
            sctp = None
        pacer = self.sender.get_timer() if self.sender is not None and self._srtp else None
        if pacer is not None:
            pacer += PACING_SLACK
        timers = (self._dtls.get_timer(), self._next_sr, sctp, pacer)
        candidates = [t for t in timers if t is not None]
        return min(candidates) if candidates else None

    @property
    def srtp_ready(self) -> bool:
        return self._srtp is not None

    @property
    def sends_video(self) -> bool:
        """Whether the answer has a video stream (a datachannel-only session has none)."""
        return self._video is not None

    # --- internals ---------------------------------------------------------------------

    def _set_state(self, state: PeerState) -> None:
        if state is not self.state:
            logger.info("%s: %s -> %s", self.name, self.state.value, state.value)
            self.state = state

    def _finish(self, state: PeerState, event: PeerEvent) -> None:
        self._srtp = None
        self._next_sr = None
        self._set_state(state)
        self._events.append(event)

    def _pump_dtls(self, now: float) -> None:
        self._out.extend(self._dtls.datagrams_to_send())
        while (event := self._dtls.next_event()) is not None:
            if isinstance(event, DtlsConnected):
                # The DTLS layer only emits this after the fingerprint check, so keys here
                # always belong to the certificate the offer named.
                self._srtp = SrtpContext(event.keys)
                if self.sender is not None:
                    self.sender.srtp = self._srtp
                self._set_state(PeerState.CONNECTED)
                self._events.append(PeerConnected(event.keys.profile.name))
                if self._video is not None:
                    self._next_sr = now + SR_INTERVAL / 2
                if self.channels is not None:
                    self.channels.start(now)
            elif isinstance(event, DtlsFailed):
                self._finish(PeerState.FAILED, PeerFailed(event.reason))
            elif isinstance(event, DtlsClosed):
                self._finish(PeerState.CLOSED, PeerClosed("dtls close_notify from peer"))
            elif isinstance(event, DtlsApplicationData):
                if self.channels is not None:
                    self.channels.receive(event.data, now)
                else:
                    self._events.append(ApplicationData(event.data))

    def _pump_sctp(self) -> None:
        """SCTP packets out as DTLS records; channel events into ours."""
        channels = self.channels
        if channels is None:
            return
        if self.state is PeerState.CONNECTED:
            for packet in channels.datagrams_to_send():
                self._dtls.send_application_data(packet)
            self._out.extend(self._dtls.datagrams_to_send())
        while (event := channels.next_event()) is not None:
            self._events.append(event)

    def _receive_rtcp(self, data: bytes, now: float) -> None:
        if self._srtp is None:
            self._bad_packet("rtcp before dtls finished", now)
            return
        try:
            packets = rtcp.parse_compound(self._srtp.unprotect_rtcp(data))
        except ValueError as exc:
            self._bad_packet("malformed rtcp", now, str(exc))
            return
        for packet in packets:
            if self.state is not PeerState.CONNECTED:
                return  # a BYE earlier in the compound ended the session
            self._handle_rtcp(packet, now)

    def _handle_rtcp(self, packet: rtcp.RtcpPacket, now: float) -> None:
        video = self._video
        our_ssrc = video.ssrc if video is not None else -1
        stats = self.stats
        sender = self.sender
        if isinstance(packet, rtcp.TransportWideCC):
            if sender is not None:
                stats.twcc_feedbacks += 1
                sender.on_transport_feedback(packet, now)
        elif isinstance(packet, rtcp.PictureLossIndication):
            self._remote_ssrcs.add(packet.sender_ssrc)
            if packet.media_ssrc == our_ssrc:
                stats.keyframe_requests += 1
                self._events.append(KeyframeRequested("pli"))
        elif isinstance(packet, rtcp.FullIntraRequest):
            self._remote_ssrcs.add(packet.sender_ssrc)
            for ssrc, seq in packet.entries:
                # RFC 5104: a repeated sequence number is a retransmitted request.
                if ssrc == our_ssrc and seq != self._last_fir_seq:
                    self._last_fir_seq = seq
                    stats.keyframe_requests += 1
                    self._events.append(KeyframeRequested("fir"))
        elif isinstance(packet, rtcp.GenericNack):
            self._remote_ssrcs.add(packet.sender_ssrc)
            if packet.media_ssrc == our_ssrc and sender is not None:
                stats.nacks_received += 1
                self._out.extend(sender.retransmit(packet.lost, stats.rtt, now))
                self._pace(now)
        elif isinstance(packet, rtcp.ReceiverReport | rtcp.SenderReport):
            self._remote_ssrcs.add(packet.ssrc)
            for block in packet.reports:
                if block.ssrc == our_ssrc:
                    self._record_report(block, now)
        elif isinstance(packet, rtcp.Remb):
            stats.remb_bitrate = packet.bitrate
            if sender is not None:
                sender.on_remb(packet.bitrate, now)
        elif isinstance(packet, rtcp.Bye):
            # The viewer is gone once every SSRC it reported from said goodbye; a BYE for
            # some other SSRC changes nothing.
            self._bye_ssrcs.update(packet.ssrcs)
            if self._remote_ssrcs and self._remote_ssrcs <= self._bye_ssrcs:
                self._finish(PeerState.CLOSED, PeerClosed("rtcp bye from peer"))

    def _pace(self, now: float) -> None:
        """What the pacer lets leave now goes out; the sender's figures into the stats."""
        sender = self.sender
        assert sender is not None
        self._out.extend(sender.due(now))
        reason = sender.take_keyframe_request()
        if reason is not None:
            self.stats.keyframe_requests += 1
            self._events.append(KeyframeRequested(reason))
        counters, stats = sender.counters, self.stats
        stats.packets_sent = counters.packets_sent
        stats.bytes_sent = counters.bytes_sent
        stats.payload_bytes_sent = counters.payload_bytes_sent
        stats.frames_sent = counters.frames_sent
        stats.frames_dropped = counters.frames_dropped
        stats.retransmits = counters.retransmits
        stats.retransmits_refused = counters.retransmits_refused
        stats.rtx_packets_sent = counters.rtx_packets_sent
        stats.pacer_queue_bytes = sender.pacer.queued_bytes
        stats.estimate = sender.target_bitrate

    def _record_report(self, block: rtcp.ReportBlock, now: float) -> None:
        self.stats.fraction_lost = block.fraction_lost / 256
        self.stats.jitter = block.jitter
        rtt = rtcp.rtt_from_report_block(block, self._ntp_middle(now))
        if rtt is not None:
            self.stats.rtt = rtt
        if self.sender is not None:
            self.sender.on_loss_report(self.stats.fraction_lost, rtt, now)
            self.stats.bwe_state = self.sender.bwe_stats().state

    def _ntp_middle(self, now: float) -> int:
        return rtcp.ntp_middle32(rtcp.ntp_from_unix(now + self._wallclock_offset))

    def _send_sender_report(self, now: float) -> None:
        video, sender = self._video, self.sender
        if video is None or sender is None or self._srtp is None:
            return
        if sender.last_rtp_ts is None:
            rtp_ts = sender.ts_offset
        else:
            # Extrapolate from the last frame so the SR's NTP/RTP pair is consistent.
            elapsed = int((now - sender.last_rtp_now) * 90000)
            rtp_ts = (sender.last_rtp_ts + elapsed) & 0xFFFFFFFF
        stats = self.stats
        report = rtcp.SenderReport(
            ssrc=video.ssrc,
            ntp_timestamp=rtcp.ntp_from_unix(now + self._wallclock_offset),
            rtp_timestamp=rtp_ts,
            packet_count=stats.packets_sent & 0xFFFFFFFF,
            octet_count=stats.payload_bytes_sent & 0xFFFFFFFF,
            reports=(),
        )
        sdes = rtcp.SourceDescription(
            chunks=(rtcp.SdesChunk(video.ssrc, ((rtcp.SDES_CNAME, video.cname.encode()),)),)
        )
        self._send_rtcp([report, sdes])

    def _send_rtcp(self, packets: list[rtcp.RtcpPacket]) -> None:
        assert self._srtp is not None
        self._out.append(self._srtp.protect_rtcp(rtcp.serialize_compound(packets)))

    def _bad_packet(self, kind: str, now: float, detail: str = "") -> None:
        """Count a dropped packet; log it while this kind and the session are under budget."""
        self.stats.bad_packets += 1
        seen = self._bad_logged.get(kind, 0)
        if seen < MAX_LOGGED_BAD_PACKETS and self._bad_logged_total < MAX_LOGGED_BAD_PACKETS_TOTAL:
            self._bad_logged[kind] = seen + 1
            self._bad_logged_total += 1
            logger.warning(
                "%s: dropped a packet: %s%s", self.name, kind, f" ({detail})" if detail else ""
            )
