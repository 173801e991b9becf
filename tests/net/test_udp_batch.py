"""sendmmsg batches: every datagram arrives, in order, as it was given."""

from __future__ import annotations

import socket

import pytest

from agent.net.udp_batch import MAX_BATCH, batch_sender


def _pair(family: int, host: str) -> tuple[socket.socket, socket.socket]:
    receiver = socket.socket(family, socket.SOCK_DGRAM)
    receiver.bind((host, 0))
    receiver.settimeout(5)
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
    sender = socket.socket(family, socket.SOCK_DGRAM)
    return sender, receiver


@pytest.mark.parametrize(
    ("family", "host"), [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]
)
def test_a_list_longer_than_one_call_arrives_whole_and_in_order(family: int, host: str) -> None:
    sender, receiver = _pair(family, host)
    with sender, receiver:
        batch = batch_sender(sender, receiver.getsockname()[:2])
        assert batch is not None
        datagrams = [bytes([index % 256]) * (1 + index * 7) for index in range(MAX_BATCH * 2 + 5)]
        batch.send(datagrams)
        assert [receiver.recv(2048) for _ in datagrams] == datagrams
        assert batch.dropped == 0


def test_the_sender_address_is_the_socket_s_own() -> None:
    sender, receiver = _pair(socket.AF_INET, "127.0.0.1")
    with sender, receiver:
        sender.bind(("127.0.0.1", 0))
        batch = batch_sender(sender, receiver.getsockname())
        assert batch is not None
        batch.send([b"one"])
        assert receiver.recvfrom(16) == (b"one", sender.getsockname())


def test_addresses_it_cannot_encode_get_no_batch_sender() -> None:
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sender:
        assert batch_sender(sender, ("::1", 9)) is None  # the other family
        assert batch_sender(sender, ("localhost", 9)) is None  # a name, not an address
        assert batch_sender(sender, ("127.0.0.1", 0)) is None
    stream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with stream:
        assert batch_sender(stream, ("127.0.0.1", 9)) is None


def test_a_closed_socket_is_an_os_error_not_a_send_on_a_reused_descriptor() -> None:
    sender, receiver = _pair(socket.AF_INET, "127.0.0.1")
    with receiver:
        batch = batch_sender(sender, receiver.getsockname())
        assert batch is not None
        sender.close()
        with pytest.raises(OSError):
            batch.send([b"late"])
