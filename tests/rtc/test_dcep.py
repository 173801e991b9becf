"""DCEP wire formats (RFC 8832 5)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.rtc.dcep import (
    ChannelType,
    DataChannelAck,
    DataChannelOpen,
    channel_type_for,
    parse_dcep,
)

# DATA_CHANNEL_OPEN for a reliable ordered channel "chat", laid out as RFC 8832 5.1 shows.
CHAT_OPEN = bytes.fromhex("03000000000000000004000063686174")


def test_parse_open() -> None:
    message = parse_dcep(CHAT_OPEN)
    assert message == DataChannelOpen(ChannelType.RELIABLE, 0, 0, "chat", "")
    assert message.serialize() == CHAT_OPEN


@pytest.mark.parametrize(
    ("ordered", "rexmit", "lifetime", "expected"),
    [
        (True, None, None, ChannelType.RELIABLE),
        (False, None, None, ChannelType.RELIABLE_UNORDERED),
        (True, 3, None, ChannelType.PARTIAL_RELIABLE_REXMIT),
        (False, 0, None, ChannelType.PARTIAL_RELIABLE_REXMIT_UNORDERED),
        (True, None, 500, ChannelType.PARTIAL_RELIABLE_TIMED),
        (False, None, 500, ChannelType.PARTIAL_RELIABLE_TIMED_UNORDERED),
    ],
)
def test_channel_types(
    ordered: bool, rexmit: int | None, lifetime: int | None, expected: ChannelType
) -> None:
    kind = channel_type_for(ordered, rexmit, lifetime)
    assert kind is expected and kind.ordered is ordered
    message = DataChannelOpen(kind, 256, rexmit or lifetime or 0, "lbl", "proto")
    parsed = DataChannelOpen.parse(message.serialize())
    assert parsed == message
    assert parsed.max_retransmits == rexmit and parsed.lifetime_ms == lifetime


def test_both_limits_refused() -> None:
    with pytest.raises(ValueError, match="not both"):
        channel_type_for(True, 1, 1)


def test_ack() -> None:
    assert parse_dcep(b"\x02") == DataChannelAck()
    with pytest.raises(ValueError):
        parse_dcep(b"\x02\x00")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_parser_raises_only_value_error(data: bytes) -> None:
    with contextlib.suppress(ValueError):
        parse_dcep(data)


@settings(max_examples=100, deadline=None)
@given(label=st.text(max_size=20), protocol=st.text(max_size=20), priority=st.integers(0, 65535))
def test_open_round_trip(label: str, protocol: str, priority: int) -> None:
    message = DataChannelOpen(ChannelType.RELIABLE_UNORDERED, priority, 0, label, protocol)
    assert DataChannelOpen.parse(message.serialize()) == message
