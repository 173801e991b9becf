"""WebRTC data channels (RFC 8831, RFC 8832) on top of an SCTP Association, sans-IO.

:class:`DataChannels` owns the association. Feed it what the DTLS layer delivers
(:meth:`receive`), call :meth:`handle_timer` at :meth:`get_timer`, send what
:meth:`datagrams_to_send` returns as DTLS application data, and read :meth:`next_event`.
The DTLS client uses even stream ids, the server odd ones (RFC 8832 6). A channel closes by
resetting its outgoing stream; it is gone once both directions are reset (RFC 8831 6.7).
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

from agent.rtc.dcep import (
    PPID_BINARY,
    PPID_BINARY_EMPTY,
    PPID_DCEP,
    PPID_STRING,
    PPID_STRING_EMPTY,
    DataChannelAck,
    DataChannelOpen,
    channel_type_for,
    parse_dcep,
)
from agent.rtc.sctp import (
    DEFAULT_LOCAL_MAX_MESSAGE_SIZE,
    Association,
    BufferedAmountLow,
    Closed,
    Connected,
    MessageReceived,
    StreamsReset,
)

logger = logging.getLogger(__name__)

MAX_CHANNEL_ID = 1023  # what browsers allow (they negotiate 1024 streams at most)


@dataclass(frozen=True, slots=True)
class ChannelsReady:
    """The association is up: channels opened so far are being announced to the peer."""


@dataclass(frozen=True, slots=True)
class ChannelOpened:
    """A channel is open (ours acknowledged, the peer's announced, or a negotiated one)."""

    channel_id: int
    label: str
    protocol: str


@dataclass(frozen=True, slots=True)
class ChannelMessage:
    channel_id: int
    data: bytes | str


@dataclass(frozen=True, slots=True)
class ChannelBufferedAmountLow:
    channel_id: int


@dataclass(frozen=True, slots=True)
class ChannelClosed:
    channel_id: int


@dataclass(frozen=True, slots=True)
class ChannelsClosed:
    """The association ended; every channel with it."""

    reason: str


DataChannelEvent = (
    ChannelsReady
    | ChannelOpened
    | ChannelMessage
    | ChannelBufferedAmountLow
    | ChannelClosed
    | ChannelsClosed
)


@dataclass(frozen=True, slots=True)
class ChannelOptions:
    """RTCDataChannelInit: ``negotiated_id`` is an id agreed out of band (no DCEP)."""

    label: str
    protocol: str = ""
    ordered: bool = True
    max_retransmits: int | None = None
    max_packet_lifetime_ms: int | None = None
    negotiated_id: int | None = None


class ChannelState(enum.Enum):
    CONNECTING = "connecting"
    OPEN = "open"
    CLOSING = "closing"


@dataclass(slots=True)
class Channel:
    channel_id: int
    label: str
    protocol: str
    ordered: bool
    max_retransmits: int | None
    lifetime_ms: int | None
    negotiated: bool
    state: ChannelState = ChannelState.CONNECTING
    announced: bool = False  # our DATA_CHANNEL_OPEN went out
    acked: bool = False  # until then user messages go ordered (RFC 8832 6)
    outgoing_reset: bool = False
    incoming_reset: bool = False


class DataChannels:
    """The data channels of one peer connection.

    Input: :meth:`start`, :meth:`receive`, :meth:`open_channel`, :meth:`send`,
    :meth:`close_channel`, :meth:`handle_timer`, :meth:`close`.
    Output: :meth:`datagrams_to_send`, :meth:`next_event`, :meth:`get_timer`.
    """

    def __init__(self, association: Association) -> None:
        self.association = association
        self.channels: dict[int, Channel] = {}
        self._events: list[DataChannelEvent] = []
        self._next_id = 0 if association.role_is_client else 1
        self._connected = False

    # --- input -----------------------------------------------------------------------

    def start(self, now: float) -> None:
        """DTLS is up: start the association (both sides send INIT, RFC 8841 allows it)."""
        self.association.connect(now)
        self._pump(now)

    def receive(self, data: bytes, now: float) -> None:
        """One DTLS application data record."""
        self.association.receive(data, now)
        self._pump(now)

    def handle_timer(self, now: float) -> None:
        self.association.handle_timer(now)
        self._pump(now)

    def open_channel(self, options: ChannelOptions, now: float) -> int:
        """Open a channel (before or after connecting); returns its stream id."""
        label, protocol, ordered = options.label, options.protocol, options.ordered
        max_retransmits = options.max_retransmits
        max_packet_lifetime_ms = options.max_packet_lifetime_ms
        negotiated_id = options.negotiated_id
        channel_type_for(ordered, max_retransmits, max_packet_lifetime_ms)  # validates
        if negotiated_id is not None:
            if negotiated_id in self.channels or not 0 <= negotiated_id <= MAX_CHANNEL_ID:
                raise ValueError(f"channel id {negotiated_id} is taken or out of range")
            channel_id = negotiated_id
        else:
            channel_id = self._allocate_id()
        channel = Channel(
            channel_id,
            label,
            protocol,
            ordered,
            max_retransmits,
            max_packet_lifetime_ms,
            negotiated=negotiated_id is not None,
        )
        self.channels[channel_id] = channel
        if channel.negotiated:
            channel.acked = True
            channel.state = ChannelState.OPEN
            self._events.append(ChannelOpened(channel_id, label, protocol))
        elif self._connected:
            self._announce(channel, now)
        return channel_id

    def send(self, channel_id: int, data: bytes | str, now: float) -> None:
        """Send one message; str goes as PPID 51, bytes as 53 (56/57 when empty)."""
        channel = self.channels.get(channel_id)
        if channel is None or (channel.state is not ChannelState.OPEN and not channel.announced):
            raise ValueError(f"channel {channel_id} is not open")
        if channel.state is ChannelState.CLOSING:
            raise ValueError(f"channel {channel_id} is closing")
        if isinstance(data, str):
            payload = data.encode()
            ppid = PPID_STRING if payload else PPID_STRING_EMPTY
        else:
            payload = bytes(data)
            ppid = PPID_BINARY if payload else PPID_BINARY_EMPTY
        lifetime = channel.lifetime_ms / 1000 if channel.lifetime_ms is not None else None
        self.association.send(
            channel_id,
            ppid,
            payload or b"\x00",  # SCTP cannot carry an empty message: one ignored byte
            ordered=channel.ordered or not channel.acked,
            max_retransmits=channel.max_retransmits,
            lifetime=lifetime,
            now=now,
        )
        self._pump(now)

    def close_channel(self, channel_id: int, now: float) -> None:
        """Close by resetting our outgoing stream; ChannelClosed once both sides did."""
        channel = self.channels.get(channel_id)
        if channel is None or channel.state is ChannelState.CLOSING:
            return
        channel.state = ChannelState.CLOSING
        if not self._connected:
            del self.channels[channel_id]
            self._events.append(ChannelClosed(channel_id))
            return
        self.association.reset_streams([channel_id], now)
        self._pump(now)

    def close(self, now: float) -> None:
        """Shut the association down gracefully."""
        self.association.shutdown(now)
        self._pump(now)

    def buffered_amount(self, channel_id: int) -> int:
        return self.association.buffered_amount(channel_id)

    def set_buffered_amount_low_threshold(self, channel_id: int, threshold: int) -> None:
        self.association.set_buffered_amount_low_threshold(channel_id, threshold)

    # --- output ----------------------------------------------------------------------

    def datagrams_to_send(self) -> list[bytes]:
        return self.association.datagrams_to_send()

    def next_event(self) -> DataChannelEvent | None:
        return self._events.pop(0) if self._events else None

    def get_timer(self) -> float | None:
        return self.association.get_timer()

    # --- internals -------------------------------------------------------------------

    def _allocate_id(self) -> int:
        candidate = self._next_id
        while candidate in self.channels:
            candidate += 2
        if candidate > MAX_CHANNEL_ID:
            raise ValueError("no free data channel id")
        self._next_id = candidate + 2
        return candidate

    def _announce(self, channel: Channel, now: float) -> None:
        message = DataChannelOpen(
            channel_type_for(channel.ordered, channel.max_retransmits, channel.lifetime_ms),
            0,
            channel.max_retransmits or channel.lifetime_ms or 0,
            channel.label,
            channel.protocol,
        )
        self.association.send(channel.channel_id, PPID_DCEP, message.serialize(), now=now)
        channel.announced = True

    def _pump(self, now: float) -> None:
        while (event := self.association.next_event()) is not None:
            if isinstance(event, MessageReceived):
                self._on_message(event, now)
            elif isinstance(event, StreamsReset):
                self._on_reset(event, now)
            elif isinstance(event, BufferedAmountLow):
                if event.stream_id in self.channels:
                    self._events.append(ChannelBufferedAmountLow(event.stream_id))
            elif isinstance(event, Connected):
                self._connected = True
                self._events.append(ChannelsReady())
                for channel in list(self.channels.values()):
                    if not channel.negotiated and not channel.announced:
                        self._announce(channel, now)
            elif isinstance(event, Closed):
                self._connected = False
                self.channels.clear()
                self._events.append(ChannelsClosed(event.reason))

    def _on_message(self, event: MessageReceived, now: float) -> None:
        if event.ppid == PPID_DCEP:
            self._on_dcep(event.stream_id, event.data, now)
            return
        channel = self.channels.get(event.stream_id)
        if channel is None or channel.incoming_reset:
            logger.info("data on stream %d without an open channel: dropped", event.stream_id)
            return
        channel.acked = True  # RFC 8832 6: data from the peer implies its ACK went out
        data: bytes | str
        if event.ppid == PPID_STRING:
            try:
                data = event.data.decode()
            except UnicodeDecodeError:
                logger.warning("channel %d: a string message that is not UTF-8", channel.channel_id)
                return
        elif event.ppid == PPID_BINARY:
            data = event.data
        elif event.ppid == PPID_STRING_EMPTY:
            data = ""
        elif event.ppid == PPID_BINARY_EMPTY:
            data = b""
        else:
            logger.info("channel %d: unknown PPID %d dropped", channel.channel_id, event.ppid)
            return
        self._events.append(ChannelMessage(channel.channel_id, data))

    def _on_dcep(self, stream_id: int, data: bytes, now: float) -> None:
        try:
            message = parse_dcep(data)
        except ValueError as exc:
            self.association.abort(f"bad DCEP message: {exc}", now)
            self._pump(now)
            return
        if isinstance(message, DataChannelAck):
            channel = self.channels.get(stream_id)
            if channel is not None and channel.state is ChannelState.CONNECTING:
                channel.acked = True
                channel.state = ChannelState.OPEN
                self._events.append(ChannelOpened(stream_id, channel.label, channel.protocol))
            return
        if stream_id in self.channels or stream_id > MAX_CHANNEL_ID:
            self.association.abort(f"DATA_CHANNEL_OPEN on stream {stream_id} in use", now)
            self._pump(now)
            return
        self.channels[stream_id] = Channel(
            stream_id,
            message.label,
            message.protocol,
            message.channel_type.ordered,
            message.max_retransmits,
            message.lifetime_ms,
            negotiated=False,
            state=ChannelState.OPEN,
            announced=True,
            acked=True,
        )
        self.association.send(stream_id, PPID_DCEP, DataChannelAck().serialize(), now=now)
        self._events.append(ChannelOpened(stream_id, message.label, message.protocol))

    def _on_reset(self, event: StreamsReset, now: float) -> None:
        for stream_id in event.stream_ids:
            channel = self.channels.get(stream_id)
            if channel is None:
                continue
            if event.incoming:
                channel.incoming_reset = True
                if channel.state is not ChannelState.CLOSING:
                    channel.state = ChannelState.CLOSING  # the peer closed: close our side
                    self.association.reset_streams([stream_id], now)
            else:
                channel.outgoing_reset = True
            if channel.incoming_reset and channel.outgoing_reset:
                del self.channels[stream_id]
                self._events.append(ChannelClosed(stream_id))


# RFC 8841 6: without a=max-message-size the peer takes 64 KiB; 0 means "any size", which
# still has to be a number here (the association refuses what exceeds it).
SDP_DEFAULT_MAX_MESSAGE_SIZE = 65536
ANY_MESSAGE_SIZE = 2**31 - 1


@dataclass(frozen=True, slots=True)
class SctpParams:
    """What the SDP says of the m=application section (RFC 8841).

    ``max_message_size`` is the peer's a=max-message-size (what we may send it);
    ``local_max_message_size`` is the one our answer announced (what we accept): over it, a
    send fails with ValueError naming both numbers, and a received message aborts the
    association with a reason saying so.
    """

    remote_port: int = 5000
    max_message_size: int = SDP_DEFAULT_MAX_MESSAGE_SIZE
    local_port: int = 5000
    local_max_message_size: int = DEFAULT_LOCAL_MAX_MESSAGE_SIZE

    @classmethod
    def from_sdp(
        cls, remote_port: int | None, remote_max_message_size: int | None, local_max: int
    ) -> SctpParams:
        """From the offer's a=sctp-port and a=max-message-size (None: absent)."""
        if remote_max_message_size is None:
            remote_max = SDP_DEFAULT_MAX_MESSAGE_SIZE
        elif remote_max_message_size == 0:
            remote_max = ANY_MESSAGE_SIZE
        else:
            remote_max = min(remote_max_message_size, ANY_MESSAGE_SIZE)
        return cls(
            remote_port=remote_port or 5000,
            max_message_size=remote_max,
            local_max_message_size=local_max,
        )


def data_channels_for(params: SctpParams, *, dtls_client: bool, name: str) -> DataChannels:
    """A DataChannels with its association, for a session whose DTLS role is known."""
    association = Association(
        role_is_client=dtls_client,
        local_port=params.local_port,
        remote_port=params.remote_port,
        max_message_size=params.max_message_size,
        local_max_message_size=params.local_max_message_size,
        name=name,
    )
    return DataChannels(association)
