"""One SCTP association over DTLS (RFC 8261), sans-IO.

Input: :meth:`connect`, :meth:`receive` (one DTLS record = one SCTP packet), :meth:`send`,
:meth:`reset_streams`, :meth:`shutdown`, :meth:`abort`, :meth:`handle_timer`.
Output: :meth:`datagrams_to_send`, :meth:`next_event`, :meth:`get_timer`.

Anything wrong in what the peer sends ends this association with an ABORT and a
:class:`Closed` event naming the reason; nothing raises to the caller. Errors of the caller
(a message too large, a full send buffer, a closed association) raise ValueError.
"""

from __future__ import annotations

import logging
import secrets

from agent.rtc.sctp.chunks import (
    Abort,
    CookieAck,
    CookieEcho,
    Error,
    Heartbeat,
    HeartbeatAck,
    Init,
    InitAck,
    Shutdown,
    ShutdownAck,
    ShutdownComplete,
    UnknownChunk,
)
from agent.rtc.sctp.cookie import StateCookie
from agent.rtc.sctp.data_chunks import Data, ForwardTsn, Sack
from agent.rtc.sctp.datapath import DataPath, StopProcessing
from agent.rtc.sctp.events import AssociationEvent, Closed, Connected
from agent.rtc.sctp.handshake import build_init, build_init_ack, cookie_from_init_ack
from agent.rtc.sctp.inbound import InboundTsns
from agent.rtc.sctp.message import OutboundMessage
from agent.rtc.sctp.outbound import Outbound
from agent.rtc.sctp.packet import Packet
from agent.rtc.sctp.params import (
    CAUSE_PROTOCOL_VIOLATION,
    CAUSE_USER_INITIATED_ABORT,
    Tlv,
    describe_causes,
)
from agent.rtc.sctp.reassembly import Reassembly
from agent.rtc.sctp.reconfig import ReConfig
from agent.rtc.sctp.rto import RTO_INITIAL, RTO_MAX
from agent.rtc.sctp.sending import PacketBuilder
from agent.rtc.sctp.state import DATA_STATES, PeerError, State
from agent.rtc.sctp.streams_reset import StreamResets

logger = logging.getLogger(__name__)

# SCTP packet size: a 1200-byte path MTU minus DTLS's ~40 bytes and the IP/UDP headers is
# what browsers assume too (RFC 8261 5 leaves it to us; usrsctp in browsers uses 1200).
SCTP_MTU = 1200
MAX_INIT_RETRANSMITS = 8
MAX_ASSOCIATION_RETRANSMITS = 10
DEFAULT_LOCAL_MAX_MESSAGE_SIZE = 8 * 1024 * 1024
DEFAULT_SEND_BUFFER = 16 * 1024 * 1024


class Association(DataPath):
    """An SCTP association for WebRTC data channels.

    ``max_message_size`` is the peer's limit (SDP ``a=max-message-size``), enforced when we
    send; ``local_max_message_size`` is ours, enforced when we reassemble (an over-long
    message aborts the association). Both sides may :meth:`connect`; an INIT collision
    is resolved as RFC 9260 5.2 says.
    """

    def __init__(
        self,
        *,
        role_is_client: bool,
        local_port: int = 5000,
        remote_port: int = 5000,
        max_message_size: int = 65536,
        local_max_message_size: int = DEFAULT_LOCAL_MAX_MESSAGE_SIZE,
        send_buffer: int = DEFAULT_SEND_BUFFER,
        now: float = 0.0,
        name: str = "sctp",
    ) -> None:
        self.role_is_client = role_is_client
        self.name = name
        self.state = State.CLOSED
        self.local_port = local_port
        self.remote_port = remote_port
        self.max_message_size = max_message_size
        self.local_max_message_size = local_max_message_size
        self.receive_buffer = local_max_message_size + 1024 * 1024
        self.local_tag = 1 + secrets.randbelow(0xFFFFFFFE)
        self.initial_tsn = secrets.randbits(32)
        self.peer_tag = 0
        self._cookie_key = secrets.token_bytes(32)
        self._events: list[AssociationEvent] = []
        self._t1_deadline: float | None = None
        self._t1_rto = RTO_INITIAL
        self._t1_count = 0
        self._t1_chunk: Init | CookieEcho | None = None
        self._t2_deadline: float | None = None
        self._t2_count = 0
        self._peer_forward_tsn = False
        self.outbound = Outbound(self.initial_tsn, SCTP_MTU, send_buffer)
        self.inbound: InboundTsns | None = None
        self.reassembly = Reassembly(local_max_message_size)
        self.resets: StreamResets | None = None
        self._builder = PacketBuilder(local_port, remote_port, SCTP_MTU)
        self._init_datapath(now)

    # --- input: the caller -----------------------------------------------------------------

    def connect(self, now: float) -> None:
        """Send INIT (both WebRTC peers may; a collision resolves itself)."""
        if self.state is not State.CLOSED:
            return
        self._t1_chunk = build_init(self.local_tag, self.receive_buffer, self.initial_tsn)
        self._set_state(State.COOKIE_WAIT)
        self._start_t1(now)
        self._flush(now)

    def send(
        self,
        stream_id: int,
        ppid: int,
        data: bytes,
        *,
        ordered: bool = True,
        max_retransmits: int | None = None,
        lifetime: float | None = None,
        now: float,
    ) -> None:
        """Queue one message. ``lifetime`` in seconds; either limit makes it partially reliable.

        Raises ValueError when the association is not open, the message exceeds the peer's
        max-message-size, the stream is being reset, or the send buffer is full.
        """
        if self.state not in (State.ESTABLISHED,):
            raise ValueError(f"association is {self.state.value}: cannot send")
        if len(data) > self.max_message_size:
            raise ValueError(
                f"message of {len(data)} bytes exceeds the peer's max-message-size "
                f"{self.max_message_size}"
            )
        if not data:
            raise ValueError("SCTP cannot carry an empty message (use the empty PPIDs)")
        if not 0 <= stream_id < 0xFFFF:
            raise ValueError(f"bad stream id {stream_id}")
        if self.resets is not None and stream_id in self.resets.pending:
            raise ValueError(f"stream {stream_id} is being reset")
        reliable = not self._peer_forward_tsn
        self.outbound.enqueue(
            OutboundMessage(
                stream_id,
                ppid,
                bytes(data),
                ordered,
                None if reliable else max_retransmits,
                None if reliable or lifetime is None else now + lifetime,
            )
        )
        self._flush(now)

    def buffered_amount(self, stream_id: int) -> int:
        """Bytes queued on ``stream_id`` that have not gone out once yet."""
        return self.outbound.buffered_amount(stream_id)

    def set_buffered_amount_low_threshold(self, stream_id: int, threshold: int) -> None:
        self.outbound.set_low_threshold(stream_id, threshold)

    def reset_streams(self, stream_ids: list[int], now: float) -> None:
        """Reset our outgoing streams (closes data channels, RFC 8831 6.7)."""
        if self.resets is None or self.state is not State.ESTABLISHED:
            raise ValueError(f"association is {self.state.value}: cannot reset streams")
        self.resets.request(stream_ids)
        self._flush(now)

    def shutdown(self, now: float) -> None:
        """Graceful close: deliver everything queued, then SHUTDOWN."""
        if self.state is State.ESTABLISHED:
            self._set_state(State.SHUTDOWN_PENDING)
            self._flush(now)
        elif self.state in (State.CLOSED, State.COOKIE_WAIT, State.COOKIE_ECHOED):
            self._terminate("shut down before connecting")

    def abort(self, reason: str, now: float) -> None:
        """End at once, telling the peer why (an ABORT with a user-initiated cause)."""
        if self.state is State.TERMINATED:
            return
        self._send_abort(Tlv(CAUSE_USER_INITIATED_ABORT, reason.encode()[:200]))
        self._terminate(f"aborted locally: {reason}")

    # --- input: the network ----------------------------------------------------------------

    def receive(self, data: bytes, now: float) -> None:
        """One SCTP packet (one DTLS application data record)."""
        if self.state is State.TERMINATED:
            return
        try:
            packet = Packet.parse(data)
            if not self._tag_ok(packet):
                logger.info("%s: dropped a packet with a foreign verification tag", self.name)
                return
            for chunk in packet.chunks:
                if self._terminated():
                    break
                try:
                    self._dispatch(chunk, now)
                except StopProcessing:
                    break
            self._after_packet(packet, now)
        except ValueError as exc:
            self._fail(str(exc))
            return
        self._flush(now)

    def _tag_ok(self, packet: Packet) -> bool:
        first = packet.chunks[0]
        if type(first) is Init:
            if len(packet.chunks) != 1 or packet.verification_tag != 0:
                raise PeerError("INIT must be alone in a packet with tag 0")
            return True
        if isinstance(first, Abort | ShutdownComplete) and first.reflected:
            return packet.verification_tag == self.peer_tag != 0
        return packet.verification_tag == self.local_tag

    def _dispatch(self, chunk: object, now: float) -> None:
        if isinstance(chunk, Data):
            self._on_data(chunk, now)
        elif isinstance(chunk, Sack):
            self._on_sack(chunk, now)
        elif isinstance(chunk, InitAck):
            self._on_init_ack(chunk, now)
        elif isinstance(chunk, Init):
            self._on_init(chunk, now)
        elif isinstance(chunk, CookieEcho):
            self._on_cookie_echo(chunk, now)
        elif isinstance(chunk, CookieAck):
            self._on_cookie_ack(now)
        elif isinstance(chunk, HeartbeatAck):
            self._on_heartbeat_ack(chunk, now)
        elif isinstance(chunk, Heartbeat):
            self._builder.control(HeartbeatAck(chunk.info))
        elif isinstance(chunk, Error):
            logger.info("%s: peer reported %s", self.name, describe_causes(chunk.causes))
        elif isinstance(chunk, Abort):
            self._terminate(f"aborted by peer: {describe_causes(chunk.causes)}")
        elif isinstance(chunk, ForwardTsn):
            self._on_forward_tsn(chunk, now)
        elif isinstance(chunk, ReConfig):
            self._on_reconfig(chunk, now)
        else:
            self._dispatch_shutdown(chunk, now)

    def _dispatch_shutdown(self, chunk: object, now: float) -> None:
        if isinstance(chunk, Shutdown):
            self._on_shutdown(chunk, now)
        elif isinstance(chunk, ShutdownAck):
            if self.state in (State.SHUTDOWN_SENT, State.SHUTDOWN_ACK_SENT):
                self._builder.control(ShutdownComplete())
                self._terminate("shutdown")
        elif isinstance(chunk, ShutdownComplete):
            if self.state is State.SHUTDOWN_ACK_SENT:
                self._terminate("shutdown")
        elif isinstance(chunk, UnknownChunk):
            self._on_unknown(chunk)

    def _on_unknown(self, chunk: UnknownChunk) -> None:
        # The two high bits of the type say what to do with a chunk we don't know (3.2).
        action = chunk.type >> 6
        if action in (1, 3):
            cause = Tlv(6, chunk.serialize())
            self._builder.control(Error((cause,)))
        if action in (0, 1):
            raise StopProcessing

    # --- handshake -------------------------------------------------------------------------

    def _on_init(self, init: Init, now: float) -> None:
        if self.state not in (
            State.CLOSED,
            State.COOKIE_WAIT,
            State.COOKIE_ECHOED,
            State.ESTABLISHED,
        ):
            return
        # Our tag and TSN are fixed for this association, so an INIT ACK in a collision and
        # a stateless one carry the same values (RFC 9260 5.2.1).
        ack = build_init_ack(
            init,
            tag=self.local_tag,
            rwnd=self.receive_buffer,
            initial_tsn=self.initial_tsn,
            key=self._cookie_key,
            now=now,
        )
        self._builder.control(ack, tag=init.initiate_tag)

    def _on_init_ack(self, ack: InitAck, now: float) -> None:
        if self.state is not State.COOKIE_WAIT:
            return  # duplicate or late: RFC 9260 5.2.3 says discard
        self._set_peer(cookie_from_init_ack(ack, self.local_tag, now))
        assert ack.cookie is not None
        self._t1_chunk = CookieEcho(ack.cookie)
        self._set_state(State.COOKIE_ECHOED)
        self._t1_count = 0
        self._t1_rto = RTO_INITIAL
        self._start_t1(now)

    def _on_cookie_echo(self, echo: CookieEcho, now: float) -> None:
        try:
            cookie = StateCookie.verify(echo.value, self._cookie_key, now)
        except ValueError as exc:
            logger.info("%s: ignored COOKIE ECHO: %s", self.name, exc)
            return
        if cookie.local_tag != self.local_tag:
            return
        if self.state in DATA_STATES or self.state is State.SHUTDOWN_ACK_SENT:
            if cookie.peer_tag == self.peer_tag:
                self._builder.control(CookieAck())  # our COOKIE ACK was lost
            return
        if self.peer_tag and cookie.peer_tag != self.peer_tag:
            return  # RFC 9260 5.2.4: neither tag matches what we agreed
        if self.peer_tag == 0:
            self._set_peer(cookie)
        self._builder.control(CookieAck())
        self._establish(now)

    def _on_cookie_ack(self, now: float) -> None:
        if self.state is State.COOKIE_ECHOED:
            self._establish(now)

    def _set_peer(self, cookie: StateCookie) -> None:
        self.peer_tag = cookie.peer_tag
        self._builder.tag = cookie.peer_tag
        self._peer_forward_tsn = cookie.peer_forward_tsn
        self.outbound.forward_tsn_enabled = cookie.peer_forward_tsn
        self.outbound.rtx.peer_rwnd = cookie.peer_rwnd
        self.outbound.rtx.ssthresh = cookie.peer_rwnd
        self.inbound = InboundTsns(cookie.peer_initial_tsn)
        self.resets = StreamResets(self.initial_tsn, cookie.peer_initial_tsn)

    def _establish(self, now: float) -> None:
        self._t1_deadline = None
        self._t1_chunk = None
        self._set_state(State.ESTABLISHED)
        self._events.append(Connected())
        self._schedule_heartbeat(now)

    def _start_t1(self, now: float) -> None:
        assert self._t1_chunk is not None
        tag = 0 if isinstance(self._t1_chunk, Init) else self.peer_tag
        self._builder.control(self._t1_chunk, tag=tag)
        self._t1_deadline = now + self._t1_rto

    def _t1_expired(self, now: float) -> None:
        self._t1_count += 1
        if self._t1_count > MAX_INIT_RETRANSMITS:
            self._terminate("handshake timed out")
            return
        self._t1_rto = min(RTO_MAX, self._t1_rto * 2)
        self._start_t1(now)

    # --- endings ---------------------------------------------------------------------------

    def _fail(self, reason: str) -> None:
        logger.warning("%s: aborting the association: %s", self.name, reason)
        self._send_abort(Tlv(CAUSE_PROTOCOL_VIOLATION, reason.encode()[:200]))
        self._terminate(reason)

    def _send_abort(self, cause: Tlv) -> None:
        self._builder.discard()
        if self.peer_tag:
            self._builder.control(Abort((cause,)))
            self._builder.flush_control()

    def _terminate(self, reason: str) -> None:
        if self.state is State.TERMINATED:
            return
        self._set_state(State.TERMINATED)
        self._t1_deadline = self._t2_deadline = None
        self._events.append(Closed(reason))

    def _terminated(self) -> bool:
        return self.state is State.TERMINATED

    def _set_state(self, state: State) -> None:
        if state is not self.state:
            logger.info("%s: %s -> %s", self.name, self.state.value, state.value)
            self.state = state

    # --- output ----------------------------------------------------------------------------

    def datagrams_to_send(self) -> list[bytes]:
        """SCTP packets to send as DTLS application data; the list is handed over."""
        return self._builder.take()

    def next_event(self) -> AssociationEvent | None:
        """The next event, or None: Connected, MessageReceived, StreamsReset, Closed..."""
        return self._events.pop(0) if self._events else None
