"""DataChannels over two associations in virtual time (RFC 8831/8832 behaviour)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from agent.rtc.datachannel import (
    ChannelClosed,
    ChannelMessage,
    ChannelOpened,
    ChannelOptions,
    ChannelsReady,
    DataChannelEvent,
    DataChannels,
    SctpParams,
    data_channels_for,
)
from agent.rtc.dcep import PPID_DCEP
from agent.rtc.sctp.data_chunks import Data
from agent.rtc.sctp.packet import Packet
from tests.rtc.sctp_net import Network, Sent


@dataclass
class Side:
    channels: DataChannels
    events: list[DataChannelEvent] = field(default_factory=list)

    def receive(self, data: bytes, now: float) -> None:
        self.channels.receive(data, now)
        self.drain()

    def datagrams_to_send(self) -> list[bytes]:
        return self.channels.datagrams_to_send()

    def get_timer(self) -> float | None:
        return self.channels.get_timer()

    def handle_timer(self, now: float) -> None:
        self.channels.handle_timer(now)
        self.drain()

    def drain(self) -> None:
        while (event := self.channels.next_event()) is not None:
            self.events.append(event)

    def messages(self, channel_id: int) -> list[bytes | str]:
        return [
            e.data
            for e in self.events
            if isinstance(e, ChannelMessage) and e.channel_id == channel_id
        ]

    def opened(self) -> list[ChannelOpened]:
        return [e for e in self.events if isinstance(e, ChannelOpened)]


def make_sides(**network: object) -> tuple[Side, Side, Network]:
    params = SctpParams(max_message_size=64 * 1024 * 1024)
    client = Side(data_channels_for(params, dtls_client=True, name="client"))
    server = Side(data_channels_for(params, dtls_client=False, name="server"))
    net = Network(client, server, **network)  # type: ignore[arg-type]
    return client, server, net


def started(**network: object) -> tuple[Side, Side, Network]:
    client, server, net = make_sides(**network)
    client.channels.start(0.0)
    server.channels.start(0.0)
    client.drain()
    server.drain()
    ready = ChannelsReady()
    net.run(lambda: ready in client.events and ready in server.events)
    return client, server, net


def test_channels_opened_from_both_sides_use_role_parity() -> None:
    client, server, net = started(delay=0.01)
    ids_client = [client.channels.open_channel(ChannelOptions(f"c{i}"), net.now) for i in range(2)]
    ids_server = [server.channels.open_channel(ChannelOptions(f"s{i}"), net.now) for i in range(2)]
    assert ids_client == [0, 2] and ids_server == [1, 3]
    net.run(lambda: len(client.opened()) == 4 and len(server.opened()) == 4)
    labels = {e.channel_id: e.label for e in server.opened()}
    assert labels == {0: "c0", 2: "c1", 1: "s0", 3: "s1"}


def test_channel_opened_before_connect_is_announced_on_connect() -> None:
    client, server, net = make_sides(delay=0.01)
    channel = client.channels.open_channel(ChannelOptions("early", protocol="json"), 0.0)
    client.channels.start(0.0)
    server.channels.start(0.0)
    net.run(lambda: len(server.opened()) == 1 and len(client.opened()) == 1)
    assert server.opened()[0] == ChannelOpened(channel, "early", "json")


@pytest.mark.parametrize("size", [0, 1, 1024, 200 * 1024, 4 * 1024 * 1024])
def test_messages_of_every_size_both_ways(size: int) -> None:
    client, server, net = started(delay=0.005)
    channel = client.channels.open_channel(ChannelOptions("data"), net.now)
    net.run(lambda: len(client.opened()) == 1)
    payload = bytes(range(256)) * (size // 256) + b"\x07" * (size % 256)
    client.channels.send(channel, payload, net.now)
    server.channels.send(channel, "é" * (size // 2), net.now)
    net.run(lambda: bool(server.messages(channel)) and bool(client.messages(channel)))
    assert server.messages(channel) == [payload]
    assert client.messages(channel) == ["é" * (size // 2)]


def test_unordered_channel_delivers_past_a_loss() -> None:
    client, server, net = started(delay=0.01)
    channel = client.channels.open_channel(ChannelOptions("u", ordered=False), net.now)
    net.run(lambda: len(client.opened()) == 1)
    start = net.now
    net.drop = lambda sent: sent.sender == 0 and b"m0" in sent.data and sent.now < start + 0.5
    for i in range(3):
        client.channels.send(channel, f"m{i}".encode(), net.now)
    net.run(lambda: len(server.messages(channel)) == 3)
    assert server.messages(channel) == [b"m1", b"m2", b"m0"]


def test_max_retransmits_zero_skips_lost_message_keeps_later_ones() -> None:
    client, server, net = started(delay=0.01)
    options = ChannelOptions("game", ordered=True, max_retransmits=0)
    channel = client.channels.open_channel(options, net.now)
    net.run(lambda: len(client.opened()) == 1 and len(server.opened()) == 1)
    dropped: list[Sent] = []

    def drop(sent: Sent) -> bool:
        if sent.sender == 0 and b"lost" in sent.data:
            dropped.append(sent)
            return True
        return False

    net.drop = drop
    for message in (b"lost", b"later1", b"later2"):
        client.channels.send(channel, message, net.now)
    net.run(lambda: len(server.messages(channel)) == 2)
    net.settle(5.0)
    assert server.messages(channel) == [b"later1", b"later2"]
    assert len(dropped) == 1  # never retransmitted


def test_negotiated_channel_needs_no_dcep() -> None:
    client, server, net = started(delay=0.01)
    options = ChannelOptions("control", negotiated_id=7)
    client.channels.open_channel(options, net.now)
    server.channels.open_channel(options, net.now)
    client.drain()
    server.drain()
    client.channels.send(7, "ping", net.now)
    net.run(lambda: bool(server.messages(7)))
    assert server.messages(7) == ["ping"]
    # No DCEP message (DATA_CHANNEL_OPEN or ACK) went out, in any chunk of any packet.
    data_chunks = [c for s in net.sent for c in Packet.parse(s.data).chunks if isinstance(c, Data)]
    assert data_chunks and all(c.ppid != PPID_DCEP for c in data_chunks)


def test_closing_one_channel_leaves_the_others() -> None:
    client, server, net = started(delay=0.01)
    first = client.channels.open_channel(ChannelOptions("first"), net.now)
    second = client.channels.open_channel(ChannelOptions("second"), net.now)
    net.run(lambda: len(client.opened()) == 2 and len(server.opened()) == 2)
    client.channels.close_channel(first, net.now)
    net.run(lambda: ChannelClosed(first) in client.events and ChannelClosed(first) in server.events)
    assert first not in server.channels.channels and second in server.channels.channels
    server.channels.send(second, b"still open", net.now)
    net.run(lambda: bool(client.messages(second)))
    assert client.messages(second) == [b"still open"]
    with pytest.raises(ValueError):
        client.channels.send(first, b"closed", net.now)
    again = client.channels.open_channel(ChannelOptions("reused"), net.now)
    net.run(lambda: len(client.opened()) == 3)
    assert again == 4  # the allocator moves on rather than reuse a just-closed id
