"""The sending half of one viewer's video: stamping, pacing, NACK history, RTX, estimation.

Per frame the fan-out's payloads are stamped into plain RTP packets (our sequence numbers,
timestamp offset and SSRC) and handed to the :class:`Pacer`; packets are SRTP-protected only
as they leave (:meth:`VideoSender.due`), because the transport-wide sequence number must be
written in the order packets really go out, and SRTP authenticates the header it sits in. The
send time of each goes to the :class:`SendSideEstimator`, whose target sets the pacing rate
and is what the runtime's bitrate policy reads.

A frame the pacer refuses leaves no trace: its sequence numbers are reused, so the viewer
sees no gap it would NACK. Retransmissions (RFC 4588 RTX when negotiated: original sequence
number + original payload on the RTX SSRC, so they are measurable apart from the media) go
through the pacer ahead of media; without RTX the original SRTP bytes are resent at once
(libsrtp refuses to protect a sequence number twice).
"""

from __future__ import annotations

import secrets
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from agent.rtc.bwe.estimator import BweStats, SendSideEstimator
from agent.rtc.pacer import Pacer
from agent.rtc.rtcp import TransportWideCC
from agent.rtc.rtp import ONE_BYTE_PROFILE, RTP_HEADER_SIZE, RtpHeaderStamper
from agent.rtc.srtp import SrtpContext

# Packets kept for answering NACKs: about HISTORY_SECONDS of the stream at its highest
# bitrate (libwebrtc keeps at least 1 s too), a power of two so the slot is a mask of the
# sequence number. By time, not a fixed count: the history is most of what a viewer costs
# in memory (~1.2 KB a packet), and a 2 Mbit/s viewer needs 256 slots, not 512.
HISTORY_SECONDS = 1.0
HISTORY_MIN, HISTORY_MAX = 128, 2048
PACKET_BITS = 1200 * 8


def history_size(max_bitrate: int) -> int:
    """Slots for HISTORY_SECONDS of packets at ``max_bitrate``: a power of two, bounded."""
    wanted = max(1, int(max_bitrate * HISTORY_SECONDS / PACKET_BITS))
    return min(HISTORY_MAX, max(HISTORY_MIN, 1 << (wanted - 1).bit_length()))
# How much idle credit the pacer may spend at once, in seconds at its pacing rate:
# libwebrtc's send burst interval (40 ms). A P-frame then leaves in one batch (one timer,
# one sendmmsg) and only keyframes are spread out; at 5 ms every frame took 2-4 timer
# wake-ups per viewer, which doubled the per-packet cost of the fan-out.
PACER_BURST = 0.04
# Retransmission budget per session (packets; burst and per second): a NACK is tiny and a
# resend is up to 1.2 KB, so without a bound one viewer could make the device flood its
# uplink. 300/s is about 3 Mbit/s, above the stream itself; a burst of 200 resends a whole
# lost 720p IDR (50-100 packets) and fits the history of a 2 Mbit/s stream (256).
RTX_BURST = 200
RTX_RATE = 300.0
# A packet is resent at most once per this long (or per RTT once known): browsers repeat a
# NACK until the packet arrives, and the copy in flight will answer them.
RTX_MIN_SPACING = 0.03
# A viewer whose pacer drops frames asks for a keyframe at most this often: every IDR costs
# all viewers bitrate, and a viewer below the floor would otherwise ask once a second.
PACER_KEYFRAME_INTERVAL = 2.0
# The transport-wide sequence number: the 0xBEDE word, then the element's id/length byte.
TRANSPORT_SEQ_OFFSET = RTP_HEADER_SIZE + 4 + 1
# The estimate never goes below this (the encoder's own floor is the bitrate policy's).
ESTIMATE_FLOOR = 50_000

_U16 = struct.Struct("!H")


@dataclass(frozen=True, slots=True)
class VideoSendParams:
    """What negotiation decided for the one video stream we send, and its bitrate bounds.

    ``transport_cc_id``: the transport-wide sequence number extension (None: not negotiated);
    ``rtx_payload_type``/``rtx_ssrc``: RFC 4588 retransmission (None: resend the original).
    """

    payload_type: int
    ssrc: int
    cname: str
    transport_cc_id: int | None = None
    rtx_payload_type: int | None = None
    rtx_ssrc: int | None = None
    start_bitrate: int = 1_000_000
    max_bitrate: int = 2_000_000


@dataclass(slots=True)
class SendCounters:
    """What the sender did, for PeerStats (the peer copies these out)."""

    packets_sent: int = 0  # media packets (the SR's packet count)
    payload_bytes_sent: int = 0  # media payload (the SR's octet count)
    bytes_sent: int = 0  # everything on the wire, retransmissions included
    frames_sent: int = 0
    frames_dropped: int = 0  # refused by the pacer (queue full, or waiting for a keyframe)
    retransmits: int = 0
    retransmits_refused: int = 0
    rtx_packets_sent: int = 0


def _header_extension(transport_cc_id: int | None) -> tuple[int | None, bytes]:
    if transport_cc_id is None:
        return None, b""
    # One element of two bytes (length field 1), padded to a word; the value is per packet.
    return ONE_BYTE_PROFILE, bytes((transport_cc_id << 4 | 1, 0, 0, 0))


class VideoSender:
    """One viewer's outgoing video; sans-IO (``now`` in seconds).

    Input: :meth:`send_frame`, :meth:`retransmit`, the feedback methods. Output:
    :meth:`due` (protected packets that may leave now), :meth:`get_timer`,
    :meth:`take_keyframe_request`. ``srtp`` must be set before frames are sent.
    """

    def __init__(self, params: VideoSendParams) -> None:
        self.params = params
        self.srtp: SrtpContext | None = None
        self.counters = SendCounters()
        profile, extension = _header_extension(params.transport_cc_id)
        self._stamper = RtpHeaderStamper(params.payload_type, params.ssrc, profile, extension)
        self._header_size = self._stamper.header_size
        self._rtx_stamper = (
            RtpHeaderStamper(params.rtx_payload_type, params.rtx_ssrc, profile, extension)
            if params.rtx_payload_type is not None and params.rtx_ssrc is not None
            else None
        )
        # Random starting points (RFC 3550 5.1) so a stream can't be spliced across sessions.
        self._seq = secrets.randbelow(0x8000)
        self._rtx_seq = secrets.randbelow(0x8000)
        self._transport_seq = 0
        self.ts_offset = secrets.randbits(32)
        self.last_rtp_ts: int | None = None
        self.last_rtp_now = 0.0
        start = min(params.start_bitrate, params.max_bitrate)
        self.estimator = SendSideEstimator(start, ESTIMATE_FLOOR, params.max_bitrate)
        self.pacer = Pacer(start, burst=PACER_BURST)
        # History for NACKs as parallel lists (no object per packet): sequence number, the
        # packet as sent (plain RTP with RTX, to rebuild; else the SRTP bytes), when it was
        # last resent, and whether it carried part of a keyframe.
        size = history_size(params.max_bitrate)
        self._history_mask = size - 1
        self._history_seq: list[int] = [-1] * size
        self._history_packet: list[bytes] = [b""] * size
        self._history_resent: list[float] = [float("-inf")] * size
        self._history_key: list[bool] = [False] * size
        self._rtx_tokens = float(RTX_BURST)
        self._rtx_refilled: float | None = None
        self._keyframe_request: str | None = None
        self._last_pacer_request: float | None = None
        # Set by the bitrate policy for a viewer below its floor: its pacer drops frames all
        # the time, and asking for IDRs would cost every viewer; the stream's own IDRs (a GOP
        # apart) are what it is served.
        self.below_floor = False

    # --- input ---------------------------------------------------------------------------

    def send_frame(
        self, payloads: Sequence[bytes], pts_90k: int, keyframe: bool, now: float
    ) -> None:
        """Stamp one access unit's payloads and queue them; the pacer may refuse the frame."""
        stamper = self._stamper
        timestamp = (pts_90k + self.ts_offset) & 0xFFFFFFFF
        seq = self._seq
        last = len(payloads) - 1
        packets = [
            stamper.stamp(seq + index, timestamp, index == last, payload)
            for index, payload in enumerate(payloads)
        ]
        if not self.pacer.enqueue_frame(packets, keyframe, now):
            self.counters.frames_dropped += 1
            self._pacer_dropped(now)
            return
        history_key, mask = self._history_key, self._history_mask
        for index in range(len(packets)):
            history_key[(seq + index) & mask] = keyframe
        self._seq = (seq + len(packets)) & 0xFFFF
        self.counters.frames_sent += 1
        self.last_rtp_ts = timestamp
        self.last_rtp_now = now

    def retransmit(self, lost: Sequence[int], rtt: float | None, now: float) -> list[bytes]:
        """Answer a NACK; returns SRTP packets to send at once (without RTX), else queues.

        A lost keyframe packet that cannot be resent asks for a new keyframe.
        """
        if self._rtx_refilled is not None:
            self._rtx_tokens = min(
                float(RTX_BURST), self._rtx_tokens + (now - self._rtx_refilled) * RTX_RATE
            )
        self._rtx_refilled = now
        spacing = max(RTX_MIN_SPACING, rtt or 0.0)
        history_seq, history_resent = self._history_seq, self._history_resent
        counters = self.counters
        direct: list[bytes] = []
        for seq in dict.fromkeys(lost):  # each sequence number once, whatever the NACK says
            slot = seq & self._history_mask
            if history_seq[slot] != seq:
                continue
            if now - history_resent[slot] < spacing:
                continue
            if self._rtx_tokens < 1:
                counters.retransmits_refused += 1
                if self._history_key[slot]:
                    self._keyframe_request = "lost keyframe packet"
                continue
            self._rtx_tokens -= 1
            history_resent[slot] = now
            counters.retransmits += 1
            packet = self._history_packet[slot]
            if self._rtx_stamper is None:
                direct.append(packet)
                counters.bytes_sent += len(packet)
            else:
                self.pacer.enqueue_retransmission(self._rtx_packet(packet), now)
        return direct

    def on_transport_feedback(self, feedback: TransportWideCC, now: float) -> None:
        self.estimator.on_transport_feedback(feedback, now)
        self.pacer.set_rate(self.estimator.target_bitrate)

    def on_remb(self, bitrate: int, now: float) -> None:
        self.estimator.on_remb(bitrate, now)
        self.pacer.set_rate(self.estimator.target_bitrate)

    def on_loss_report(self, fraction_lost: float, rtt: float | None, now: float) -> None:
        self.estimator.on_loss_report(fraction_lost, rtt, now)
        self.pacer.set_rate(self.estimator.target_bitrate)

    def set_max_bitrate(self, bitrate: int) -> None:
        self.estimator.set_max_bitrate(bitrate)
        self.pacer.set_rate(self.estimator.target_bitrate)

    # --- output --------------------------------------------------------------------------

    def due(self, now: float) -> list[bytes]:
        """Protect and return what the pacer lets leave at ``now``, in order."""
        srtp = self.srtp
        if srtp is None:
            return []
        packets = self.pacer.due(now)
        if not packets:
            return packets
        out: list[bytes] = []
        stamped = self.params.transport_cc_id is not None
        size = self._header_size
        media_pt = self.params.payload_type
        counters = self.counters
        estimator = self.estimator
        mask = self._history_mask
        history_seq, history_packet = self._history_seq, self._history_packet
        history_resent, keep_plain = self._history_resent, self._rtx_stamper is not None
        for packet in packets:
            if stamped:
                transport_seq = self._transport_seq
                self._transport_seq = (transport_seq + 1) & 0xFFFF
                header = bytearray(packet[:size])
                _U16.pack_into(header, TRANSPORT_SEQ_OFFSET, transport_seq)
                protected = srtp.protect_parts(header, memoryview(packet)[size:])
                estimator.on_packet_sent(transport_seq, len(protected), now)
            else:
                protected = srtp.protect_parts(b"", packet)
            if packet[1] & 0x7F == media_pt:
                seq = _U16.unpack_from(packet, 2)[0]
                slot = seq & mask
                history_seq[slot] = seq
                history_packet[slot] = packet if keep_plain else protected
                history_resent[slot] = -1.0
                counters.packets_sent += 1
                counters.payload_bytes_sent += len(packet) - size
            else:
                counters.rtx_packets_sent += 1
            counters.bytes_sent += len(protected)
            out.append(protected)
        return out

    def get_timer(self) -> float | None:
        """When :meth:`due` next has packets (None: the pacer is empty)."""
        return self.pacer.get_timer()

    def take_keyframe_request(self) -> str | None:
        """Why this viewer needs a keyframe, once; None when it does not."""
        reason, self._keyframe_request = self._keyframe_request, None
        return reason

    @property
    def target_bitrate(self) -> int:
        return self.estimator.target_bitrate

    def bwe_stats(self) -> BweStats:
        return self.estimator.stats()

    # --- internals -----------------------------------------------------------------------

    def _pacer_dropped(self, now: float) -> None:
        last = self._last_pacer_request
        if self.below_floor or not self.pacer.needs_keyframe:
            return
        if last is None or now - last >= PACER_KEYFRAME_INTERVAL:
            self._last_pacer_request = now
            self._keyframe_request = "pacer dropped frames"

    def _rtx_packet(self, original: bytes) -> bytes:
        """RFC 4588 section 4: the original sequence number, then the original payload."""
        assert self._rtx_stamper is not None
        size = self._header_size
        timestamp = int.from_bytes(original[4:8])
        marker = bool(original[1] & 0x80)
        payload = b"".join((original[2:4], memoryview(original)[size:]))
        packet = self._rtx_stamper.stamp(self._rtx_seq, timestamp, marker, payload)
        self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
        return packet
