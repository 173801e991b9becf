"""The established association's data path: DATA in, SACKs (delayed: every 2nd packet or
200 ms), FORWARD TSN, RE-CONFIG, HEARTBEAT, SHUTDOWN, timers and the flush that bundles it
all. The Association class adds the handshake and the public API on top of this one.
"""

from __future__ import annotations

import logging
import secrets

from agent.rtc.sctp.chunks import Heartbeat, HeartbeatAck, Shutdown, ShutdownAck
from agent.rtc.sctp.data_chunks import Data, ForwardTsn, Sack
from agent.rtc.sctp.events import AssociationEvent, BufferedAmountLow, MessageReceived
from agent.rtc.sctp.handshake import heartbeat_info, read_heartbeat_info
from agent.rtc.sctp.inbound import MAX_TSN_AHEAD, Arrival, InboundTsns
from agent.rtc.sctp.outbound import Outbound
from agent.rtc.sctp.packet import Packet
from agent.rtc.sctp.reassembly import Message, Reassembly
from agent.rtc.sctp.reconfig import (
    IncomingResetRequest,
    OutgoingResetRequest,
    ReConfig,
    ReconfigParam,
    ReconfigResponse,
)
from agent.rtc.sctp.sending import PacketBuilder
from agent.rtc.sctp.state import DATA_STATES, PeerError, State
from agent.rtc.sctp.streams_reset import StreamResets
from agent.rtc.sctp.tsn import tsn_distance, tsn_gt

logger = logging.getLogger(__name__)

SACK_DELAY = 0.2
HEARTBEAT_INTERVAL = 30.0
MAX_PATH_ERRORS = 10
# Stream 65535 is not a valid stream id (RFC 9260 3.3.1 counts 0..n-1 of 65535).
MAX_STREAM_ID = 0xFFFE


class StopProcessing(Exception):
    """An unknown chunk whose type bits say: ignore the rest of this packet."""


class DataPath:
    """Shared state and the established-state handling of :class:`Association`."""

    name: str
    state: State
    peer_tag: int
    receive_buffer: int
    outbound: Outbound
    inbound: InboundTsns | None
    reassembly: Reassembly
    resets: StreamResets | None
    _builder: PacketBuilder
    _events: list[AssociationEvent]
    _t1_deadline: float | None
    _t2_deadline: float | None
    _t2_count: int

    def _init_datapath(self, now: float) -> None:
        self._sack_deadline: float | None = None
        self._sack_now = False
        self._data_packets = 0
        self._hb_deadline: float | None = None
        self._hb_nonce: int | None = None
        self._hb_errors = 0

    # --- hooks the Association provides ------------------------------------------------

    def _fail(self, reason: str) -> None:
        raise NotImplementedError

    def _terminate(self, reason: str) -> None:
        raise NotImplementedError

    def _set_state(self, state: State) -> None:
        raise NotImplementedError

    def _t1_expired(self, now: float) -> None:
        raise NotImplementedError

    # --- DATA and SACK -----------------------------------------------------------------

    def _on_data(self, chunk: Data, now: float) -> None:
        inbound = self.inbound
        if inbound is None or self.state not in DATA_STATES:
            return  # e.g. DATA bundled before our COOKIE ACK arrived: the peer resends
        if chunk.stream_id > MAX_STREAM_ID:
            raise PeerError(f"DATA on invalid stream {chunk.stream_id}")
        arrival = inbound.classify(chunk.tsn)
        if arrival is Arrival.OUT_OF_WINDOW:
            raise PeerError(f"DATA TSN {chunk.tsn} out of window")
        if arrival is Arrival.DUPLICATE:
            self._sack_now = True
            return
        held = self.reassembly.bytes_held + len(chunk.user_data)
        # Past our window only a chunk that fills a gap is taken (RFC 9260 6.2), and even
        # that only up to twice the window: memory stays bounded whatever the peer does.
        beyond = tsn_gt(chunk.tsn, inbound.highest)
        if (held > self.receive_buffer and beyond) or held > 2 * self.receive_buffer:
            self._sack_now = True
            return
        inbound.mark(chunk.tsn)
        self._deliver(self.reassembly.add(chunk))
        if inbound.has_gaps:
            self._sack_now = True
        self._check_deferred_reset()

    def _deliver(self, messages: list[Message]) -> None:
        for message in messages:
            self._events.append(
                MessageReceived(message.stream_id, message.ppid, message.data, message.unordered)
            )

    def _after_packet(self, packet: Packet, now: float) -> None:
        if not any(isinstance(chunk, Data) for chunk in packet.chunks):
            return
        self._data_packets += 1
        if self._data_packets >= 2:
            self._sack_now = True
        elif self._sack_deadline is None:
            self._sack_deadline = now + SACK_DELAY

    def _on_sack(self, sack: Sack, now: float) -> None:
        if self.state not in DATA_STATES and self.state is not State.SHUTDOWN_ACK_SENT:
            return
        self.outbound.on_sack(sack, now)
        self._hb_errors = 0

    def _on_forward_tsn(self, chunk: ForwardTsn, now: float) -> None:
        inbound = self.inbound
        if inbound is None or self.state not in DATA_STATES:
            return
        if tsn_distance(chunk.new_cumulative_tsn, inbound.cumulative) > MAX_TSN_AHEAD:
            raise PeerError("FORWARD TSN out of window")
        if inbound.forward(chunk.new_cumulative_tsn):
            self._deliver(self.reassembly.forward(chunk.new_cumulative_tsn, chunk.streams))
        self._sack_now = True
        self._check_deferred_reset()

    # --- RE-CONFIG ----------------------------------------------------------------------

    def _on_reconfig(self, chunk: ReConfig, now: float) -> None:
        resets, inbound = self.resets, self.inbound
        if resets is None or inbound is None or self.state not in DATA_STATES:
            return
        replies: list[ReconfigParam] = []
        for param in chunk.params:
            if isinstance(param, OutgoingResetRequest):
                response, event = resets.on_outgoing_request(param, inbound, self.reassembly)
                replies.append(response)
                if event is not None:
                    self._events.append(event)
            elif isinstance(param, IncomingResetRequest):
                replies.append(resets.on_incoming_request(param))
            elif isinstance(param, ReconfigResponse):
                event = resets.on_response(param, self.outbound)
                if event is not None:
                    self._events.append(event)
        if replies:
            self._builder.control(ReConfig(tuple(replies)))

    def _check_deferred_reset(self) -> None:
        if self.resets is None or self.inbound is None:
            return
        done = self.resets.check_deferred(self.inbound, self.reassembly)
        if done is not None:
            response, event = done
            self._builder.control(ReConfig((response,)))
            if event is not None:
                self._events.append(event)

    # --- HEARTBEAT ----------------------------------------------------------------------

    def _schedule_heartbeat(self, now: float) -> None:
        self._hb_deadline = now + self.outbound.rtx.rto.rto + HEARTBEAT_INTERVAL

    def _heartbeat_due(self, now: float) -> None:
        if self.outbound.rtx.in_flight:
            self._schedule_heartbeat(now)  # T3 already watches the path
            return
        if self._hb_nonce is not None:
            self._hb_errors += 1
            self.outbound.rtx.rto.backoff()
            if self._hb_errors > MAX_PATH_ERRORS:
                self._terminate("peer stopped answering heartbeats")
                return
        self._hb_nonce = secrets.randbits(64)
        self._builder.control(Heartbeat(heartbeat_info(now, self._hb_nonce)))
        self._schedule_heartbeat(now)

    def _on_heartbeat_ack(self, chunk: HeartbeatAck, now: float) -> None:
        info = read_heartbeat_info(chunk.info)
        if info is None or info[1] != self._hb_nonce:
            return
        self._hb_nonce = None
        self._hb_errors = 0
        self.outbound.rtx.rto.sample(now - info[0])

    # --- SHUTDOWN -----------------------------------------------------------------------

    def _on_shutdown(self, chunk: Shutdown, now: float) -> None:
        if self.state in (State.ESTABLISHED, State.SHUTDOWN_PENDING):
            self._set_state(State.SHUTDOWN_RECEIVED)
        elif self.state is State.SHUTDOWN_SENT:
            self._send_shutdown_ack(now)  # both closed at once (RFC 9260 9.2)
            return
        if self.state is State.SHUTDOWN_RECEIVED:
            rwnd = self.outbound.rtx.peer_rwnd + self.outbound.rtx.flight_size
            self.outbound.on_sack(Sack(chunk.cumulative_tsn, rwnd), now)

    def _check_shutdown(self, now: float) -> None:
        if not self.outbound.idle or self.inbound is None:
            return
        if self.state is State.SHUTDOWN_PENDING:
            self._set_state(State.SHUTDOWN_SENT)
            self._t2_count = 0
            self._send_t2_chunk(now)
        elif self.state is State.SHUTDOWN_RECEIVED:
            self._send_shutdown_ack(now)

    def _send_shutdown_ack(self, now: float) -> None:
        self._set_state(State.SHUTDOWN_ACK_SENT)
        self._t2_count = 0
        self._send_t2_chunk(now)

    def _send_t2_chunk(self, now: float) -> None:
        assert self.inbound is not None
        if self.state is State.SHUTDOWN_SENT:
            self._builder.control(Shutdown(self.inbound.cumulative))
        else:
            self._builder.control(ShutdownAck())
        self._t2_deadline = now + self.outbound.rtx.rto.rto

    def _t2_expired(self, now: float) -> None:
        self._t2_count += 1
        if self._t2_count > MAX_PATH_ERRORS:
            self._terminate("shutdown timed out")
            return
        self.outbound.rtx.rto.backoff()
        self._send_t2_chunk(now)

    # --- timers -------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """The earliest ``now`` at which :meth:`handle_timer` has work, or None."""
        if self.state is State.TERMINATED:
            return None
        timers = [self._t1_deadline, self._t2_deadline, self._sack_deadline]
        if self.state in DATA_STATES:
            timers += [self.outbound.rtx.t3_deadline, self._hb_deadline]
            if self.resets is not None:
                timers.append(self.resets.deadline)
        present = [t for t in timers if t is not None]
        return min(present) if present else None

    def handle_timer(self, now: float) -> None:
        """Run every timer due at ``now``: T1, T2, T3-rtx, delayed SACK, heartbeat, reconfig."""
        if self.state is State.TERMINATED:
            return
        if self._t1_deadline is not None and now >= self._t1_deadline:
            self._t1_expired(now)
        if self._t2_deadline is not None and now >= self._t2_deadline:
            self._t2_expired(now)
        if self._sack_deadline is not None and now >= self._sack_deadline:
            self._sack_now = True
        if self.state in DATA_STATES:
            self._data_timers(now)
        self._flush(now)

    def _data_timers(self, now: float) -> None:
        rtx = self.outbound.rtx
        if rtx.t3_deadline is not None and now >= rtx.t3_deadline:
            self.outbound.on_t3_expired(now)
            rtx.resend_forward_tsn()
            if rtx.errors > MAX_PATH_ERRORS:
                self._terminate("peer stopped acknowledging data")
                return
        if self._hb_deadline is not None and now >= self._hb_deadline:
            self._heartbeat_due(now)
        resets = self.resets
        if resets is not None and resets.deadline is not None and now >= resets.deadline:
            chunk = resets.on_timer(now, rtx.rto.rto)
            if chunk is not None:
                self._builder.control(chunk)

    # --- output -------------------------------------------------------------------------

    def _flush(self, now: float) -> None:
        if self.state not in DATA_STATES:
            self._builder.flush_control()
            return
        resets = self.resets
        if resets is not None:
            chunk = resets.poll(self.outbound, now, self.outbound.rtx.rto.rto)
            if chunk is not None:
                self._builder.control(chunk)
        if self._sack_deadline is not None and self.outbound.has_unsent():
            self._sack_now = True  # bundle the delayed SACK with the data we send anyway
        if self._sack_now and self.inbound is not None:
            rwnd = max(0, self.receive_buffer - self.reassembly.bytes_held)
            self._builder.control(self.inbound.build_sack(rwnd))
            self._sack_now = False
            self._sack_deadline = None
            self._data_packets = 0
        forward = self.outbound.forward_tsn()
        if forward is not None:
            self._builder.control(forward)
        probe = self.outbound.rtx.t3_deadline is None
        self._builder.build(lambda space: self.outbound.chunks_for_packet(space, now, probe))
        for stream_id in self.outbound.take_low_events():
            self._events.append(BufferedAmountLow(stream_id))
        self._check_shutdown(now)
        if self.state not in DATA_STATES:
            self._builder.flush_control()
