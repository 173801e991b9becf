"""One viewer's WebRTC session, sans-IO: DTLS-SRTP, RTP out, RTCP both ways.

ICE is not in here: the caller (agent/net) owns the aioice connection, hands every datagram
the pair receives to :meth:`PeerSession.receive`, and sends what
:meth:`PeerSession.datagrams_to_send` returns. Time comes in as ``now`` (seconds on the
caller's monotonic clock); ``wallclock_offset`` turns it into Unix time for RTCP's NTP fields.
"""

from __future__ import annotations

import enum
import logging
import secrets
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
from agent.rtc.rtp import RtpHeaderStamper
from agent.rtc.srtp import SrtpContext

logger = logging.getLogger(__name__)

# Packets kept for answering NACKs: about 1.5 s of a 2 Mbit/s stream. A power of two so the
# slot is a mask of the sequence number.
HISTORY_SIZE = 512
# RFC 3550 leaves the interval to the sender; browsers compute A/V sync and RTT from SRs, so
# one a second is plenty and costs nothing.
SR_INTERVAL = 1.0
# Log at most this many bad packets per session and kind, and this many in all: a hostile
# or broken peer must not be able to fill the SD card with log lines.
MAX_LOGGED_BAD_PACKETS = 3
MAX_LOGGED_BAD_PACKETS_TOTAL = 12
# Retransmission budget per session (packets; burst and per second): a NACK is tiny and a
# resend is up to 1.2 KB, so without a bound one viewer could make the device flood its
# uplink. 300/s is about 3 Mbit/s, above the stream itself.
RTX_BURST = 300
RTX_RATE = 300.0
# A packet is resent at most once per this long (or per RTT once known): browsers repeat a
# NACK until the packet arrives, and the copy in flight will answer them.
RTX_MIN_SPACING = 0.03


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
    """The viewer sent a PLI or FIR: its decoder needs an IDR."""

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


@dataclass(frozen=True, slots=True)
class VideoSendParams:
    """What negotiation decided for the one video stream we send."""

    payload_type: int
    ssrc: int
    cname: str


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

        # Random starting points (RFC 3550 5.1) so a stream can't be spliced across sessions.
        self._seq = secrets.randbelow(0x8000)
        self._ts_offset = secrets.randbits(32)
        self._stamper = (
            RtpHeaderStamper(payload_type=video.payload_type, ssrc=video.ssrc) if video else None
        )
        # History for NACKs as parallel lists (no object per packet): sequence number,
        # protected bytes, and when the packet was last resent.
        self._history_seq: list[int] = [-1] * HISTORY_SIZE
        self._history_packet: list[bytes] = [b""] * HISTORY_SIZE
        self._history_resent: list[float] = [float("-inf")] * HISTORY_SIZE
        self._rtx_tokens = float(RTX_BURST)
        self._rtx_refilled: float | None = None
        self._remote_ssrcs: set[int] = set()
        self._bye_ssrcs: set[int] = set()
        self._last_fir_seq: int | None = None
        self._bad_logged_total = 0
        self._last_rtp_ts: int | None = None
        self._last_rtp_now = 0.0
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

        The hot path: per packet only the header's sequence number, timestamp and marker
        change, so the stamper rewrites a preallocated header and SRTP protects header and
        payload in its own preallocated buffer: one copy in, one bytes object out.
        """
        srtp = self._srtp
        stamper = self._stamper
        if srtp is None or stamper is None or not payloads:
            return
        timestamp = (pts_90k + self._ts_offset) & 0xFFFFFFFF
        last = len(payloads) - 1
        seq = self._seq
        history_seq = self._history_seq
        history_packet = self._history_packet
        history_resent = self._history_resent
        out = self._out
        stats = self.stats
        sent_bytes = 0
        payload_bytes = 0
        for index, payload in enumerate(payloads):
            packet = srtp.protect_parts(stamper.header(seq, timestamp, index == last), payload)
            out.append(packet)
            slot = seq & (HISTORY_SIZE - 1)
            history_seq[slot] = seq
            history_packet[slot] = packet
            history_resent[slot] = -1.0
            sent_bytes += len(packet)
            payload_bytes += len(payload)
            seq = (seq + 1) & 0xFFFF
        self._seq = seq
        stats.packets_sent += last + 1
        stats.bytes_sent += sent_bytes
        stats.payload_bytes_sent += payload_bytes
        stats.frames_sent += 1
        self._last_rtp_ts = timestamp
        self._last_rtp_now = now

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
        candidates = [t for t in (self._dtls.get_timer(), self._next_sr, sctp) if t is not None]
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
        if isinstance(packet, rtcp.PictureLossIndication):
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
            if packet.media_ssrc == our_ssrc:
                stats.nacks_received += 1
                self._retransmit(packet.lost, now)
        elif isinstance(packet, rtcp.ReceiverReport | rtcp.SenderReport):
            self._remote_ssrcs.add(packet.ssrc)
            for block in packet.reports:
                if block.ssrc == our_ssrc:
                    self._record_report(block, now)
        elif isinstance(packet, rtcp.Remb):
            stats.remb_bitrate = packet.bitrate
        elif isinstance(packet, rtcp.Bye):
            # The viewer is gone once every SSRC it reported from said goodbye; a BYE for
            # some other SSRC changes nothing.
            self._bye_ssrcs.update(packet.ssrcs)
            if self._remote_ssrcs and self._remote_ssrcs <= self._bye_ssrcs:
                self._finish(PeerState.CLOSED, PeerClosed("rtcp bye from peer"))

    def _retransmit(self, lost: Sequence[int], now: float) -> None:
        # Answered from packets already protected: resending the same SRTP bytes needs no
        # new keystream and the receiver never saw them, so its replay window accepts them.
        if self._rtx_refilled is not None:
            self._rtx_tokens = min(
                float(RTX_BURST), self._rtx_tokens + (now - self._rtx_refilled) * RTX_RATE
            )
        self._rtx_refilled = now
        spacing = max(RTX_MIN_SPACING, self.stats.rtt or 0.0)
        history_seq = self._history_seq
        history_resent = self._history_resent
        for seq in dict.fromkeys(lost):  # each sequence number once, whatever the NACK says
            slot = seq & (HISTORY_SIZE - 1)
            if history_seq[slot] != seq or now - history_resent[slot] < spacing:
                continue
            if self._rtx_tokens < 1:
                self.stats.retransmits_refused += 1
                continue
            self._rtx_tokens -= 1
            history_resent[slot] = now
            self._out.append(self._history_packet[slot])
            self.stats.retransmits += 1

    def _record_report(self, block: rtcp.ReportBlock, now: float) -> None:
        self.stats.fraction_lost = block.fraction_lost / 256
        self.stats.jitter = block.jitter
        rtt = rtcp.rtt_from_report_block(block, self._ntp_middle(now))
        if rtt is not None:
            self.stats.rtt = rtt

    def _ntp_middle(self, now: float) -> int:
        return rtcp.ntp_middle32(rtcp.ntp_from_unix(now + self._wallclock_offset))

    def _send_sender_report(self, now: float) -> None:
        video = self._video
        if video is None or self._srtp is None:
            return
        if self._last_rtp_ts is None:
            rtp_ts = self._ts_offset
        else:
            # Extrapolate from the last frame so the SR's NTP/RTP pair is consistent.
            elapsed = int((now - self._last_rtp_now) * 90000)
            rtp_ts = (self._last_rtp_ts + elapsed) & 0xFFFFFFFF
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
