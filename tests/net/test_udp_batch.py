"""sendmmsg batches: every datagram arrives, in order, as it was given."""

from __future__ import annotations

import socket

import pytest

from agent.net.udp_batch import GSO_MAX_SEGMENTS, MAX_BATCH, batch_sender, segment_runs


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


@pytest.mark.parametrize("gso", [True, False])
def test_runs_of_equal_datagrams_arrive_as_the_same_datagrams(gso: bool) -> None:
    sender, receiver = _pair(socket.AF_INET, "127.0.0.1")
    with sender, receiver:
        batch = batch_sender(sender, receiver.getsockname())
        assert batch is not None
        batch.gso = gso
        # A frame as the packetizer makes it: STAP-A, FU-A fragments of one size and a
        # shorter last one, then a second NAL's fragments, more than one GSO buffer holds.
        datagrams = [b"\x80stap"]
        datagrams += [bytes([n]) * 1228 for n in range(30)] + [b"\x80" * 300]
        datagrams += [bytes([n]) * 1000 for n in range(GSO_MAX_SEGMENTS + 3)]
        batch.send(datagrams)
        assert [receiver.recv(2048) for _ in datagrams] == datagrams
        assert batch.gso is gso  # loopback segments: GSO was used, not turned off
        assert batch.dropped == 0


def test_segment_runs_group_equal_lengths_with_a_shorter_last() -> None:
    assert segment_runs([5, 10, 10, 10, 4, 4, 7]) == [(0, 1, 0), (1, 4, 10), (5, 1, 0), (6, 1, 0)]
    assert segment_runs([]) == []
    assert segment_runs([8, 9]) == [(0, 1, 0), (1, 1, 0)]  # a longer one starts a new run
    runs = segment_runs([500] * (GSO_MAX_SEGMENTS + 1))
    assert runs == [(0, GSO_MAX_SEGMENTS, 500), (GSO_MAX_SEGMENTS, 1, 0)]
    assert segment_runs([30000, 30000, 30000]) == [(0, 2, 30000), (2, 1, 0)]  # 64 KiB bound
