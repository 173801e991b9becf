"""SCTP's parsers and its receive path are linear in their input (issue 12's rule), counted
in opcodes (tests/rtc/cost.py), on hypothesis-built adversarial packets: many small
chunks, many gap blocks, DATA out of order and duplicated, fragments that never complete."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.rtc.dcep import ChannelType, DataChannelOpen
from agent.rtc.sctp.data_chunks import Data, Sack
from agent.rtc.sctp.packet import Packet, serialize_packet
from tests.rtc.cost import assert_linear, count_work
from tests.rtc.sctp_helpers import connected_pair

PORT = 5000


def _packet(tag: int, chunks: list[bytes]) -> bytes:
    return serialize_packet(PORT, PORT, tag, chunks)


tsn_offsets = st.lists(st.integers(0, 4000), min_size=1, max_size=300)


@settings(max_examples=25, deadline=None)
@given(offsets=tsn_offsets, payload=st.binary(max_size=8))
def test_packet_parse_work_is_linear(offsets: list[int], payload: bytes) -> None:
    chunks = [Data(1000 + o, 0, o & 0xFFFF, 51, payload or b"x").serialize() for o in offsets]
    assert_linear(Packet.parse, _packet(1, chunks), 30, 2_000)


@settings(max_examples=25, deadline=None)
@given(
    gaps=st.lists(st.tuples(st.integers(1, 60000), st.integers(0, 50)), max_size=200),
    duplicates=st.lists(st.integers(0, 2**32 - 1), max_size=200),
)
def test_sack_parse_work_is_linear(gaps: list[tuple[int, int]], duplicates: list[int]) -> None:
    blocks = tuple((start, min(start + length, 65535)) for start, length in gaps)
    data = Sack(5, 100_000, blocks, tuple(duplicates)).serialize()
    assert_linear(Sack.parse, data, 30, 1_000)


@settings(max_examples=25, deadline=None)
@given(label=st.text(max_size=2000), protocol=st.text(max_size=2000))
def test_dcep_open_parse_work_is_linear(label: str, protocol: str) -> None:
    message = DataChannelOpen(
        channel_type=ChannelType.RELIABLE, priority=0, reliability=0, label=label, protocol=protocol
    ).serialize()
    assert_linear(DataChannelOpen.parse, message, 10, 1_000)


@settings(max_examples=10, deadline=None)
@given(offsets=tsn_offsets, unfinished=st.booleans())
def test_receiving_out_of_order_data_is_linear_per_chunk(
    offsets: list[int], unfinished: bool
) -> None:
    """DATA the receiver must track (gaps, duplicates, fragments waiting for their rest):
    the work of receiving it stays a bounded amount per chunk, never per chunk held."""
    _, b, net = connected_pair()
    receiver = b.association
    assert receiver.inbound is not None
    base = receiver.inbound.cumulative + 2  # leave a hole: nothing is ever in order
    chunks = [
        Data(base + o, 0, 0, 53, b"y" * 8, begin=True, end=not unfinished).serialize()
        for o in offsets
    ]
    packets = [_packet(receiver.local_tag, chunks[i : i + 50]) for i in range(0, len(chunks), 50)]

    def receive_all() -> None:
        for packet in packets:
            receiver.receive(packet, net.now)

    work, _ = count_work(receive_all)
    assert receiver.inbound.has_gaps  # the chunks were taken in and are held, not dropped
    limit = 1_500 * len(chunks) + 20_000 * len(packets)
    assert work <= limit, f"{work} opcodes for {len(chunks)} chunks (limit {limit})"
