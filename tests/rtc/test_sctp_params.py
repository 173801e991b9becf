"""a=max-message-size (RFC 8841) from the SDP to the association, and its errors both ways."""

from __future__ import annotations

import pytest

from agent.rtc.datachannel import (
    ANY_MESSAGE_SIZE,
    ChannelOptions,
    ChannelsClosed,
    ChannelsReady,
    SctpParams,
    data_channels_for,
)
from agent.rtc.sdp import ANSWER_MAX_MESSAGE_SIZE
from tests.rtc.sctp_net import Network
from tests.rtc.test_datachannel import Side


@pytest.mark.parametrize(
    ("offered", "expected"),
    [(None, 65536), (0, ANY_MESSAGE_SIZE), (262144, 262144), (2**64 - 1, ANY_MESSAGE_SIZE)],
)
def test_offer_max_message_size_becomes_the_send_limit(offered: int | None, expected: int) -> None:
    params = SctpParams.from_sdp(None, offered, ANSWER_MAX_MESSAGE_SIZE)
    assert params.max_message_size == expected
    assert params.remote_port == 5000
    assert params.local_max_message_size == ANSWER_MAX_MESSAGE_SIZE
    channels = data_channels_for(params, dtls_client=True, name="t")
    assert channels.association.max_message_size == expected
    assert channels.association.local_max_message_size == ANSWER_MAX_MESSAGE_SIZE


def _pair(client_limit: int, server_announced: int) -> tuple[Side, Side, Network]:
    """The client believes the server takes ``client_limit``; the server takes only what it
    announced."""
    client = Side(
        data_channels_for(
            SctpParams(max_message_size=client_limit), dtls_client=True, name="client"
        )
    )
    server = Side(
        data_channels_for(
            SctpParams(local_max_message_size=server_announced), dtls_client=False, name="server"
        )
    )
    net = Network(client, server, delay=0.005)  # type: ignore[arg-type]
    client.channels.start(0.0)
    server.channels.start(0.0)
    net.run(lambda: ChannelsReady() in client.events and ChannelsReady() in server.events)
    return client, server, net


def test_sending_over_the_peers_limit_is_refused_naming_it() -> None:
    client, _, net = _pair(client_limit=1000, server_announced=1000)
    channel = client.channels.open_channel(ChannelOptions("c"), net.now)
    with pytest.raises(ValueError, match="1001 bytes exceeds the peer's max-message-size 1000"):
        client.channels.send(channel, b"x" * 1001, net.now)
    client.channels.send(channel, b"x" * 1000, net.now)  # the limit itself is allowed


def test_receiving_over_our_announced_limit_aborts_with_the_reason() -> None:
    client, server, net = _pair(client_limit=10_000, server_announced=4000)
    channel = client.channels.open_channel(ChannelOptions("c"), net.now)
    client.channels.send(channel, b"x" * 5000, net.now)
    net.run(lambda: any(isinstance(e, ChannelsClosed) for e in server.events))
    closed = next(e for e in server.events if isinstance(e, ChannelsClosed))
    assert "exceeds our a=max-message-size 4000" in closed.reason
