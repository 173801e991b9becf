"""Data Channel Establishment Protocol messages (RFC 8832 5) and the WebRTC PPIDs (RFC 8831 8)."""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Self

PPID_DCEP = 50
PPID_STRING = 51
PPID_BINARY = 53
PPID_STRING_EMPTY = 56
PPID_BINARY_EMPTY = 57

MESSAGE_OPEN = 0x03
MESSAGE_ACK = 0x02

_OPEN_FIXED = struct.Struct("!BBHIHH")


class ChannelType(enum.IntEnum):
    RELIABLE = 0x00
    RELIABLE_UNORDERED = 0x80
    PARTIAL_RELIABLE_REXMIT = 0x01
    PARTIAL_RELIABLE_REXMIT_UNORDERED = 0x81
    PARTIAL_RELIABLE_TIMED = 0x02
    PARTIAL_RELIABLE_TIMED_UNORDERED = 0x82

    @property
    def ordered(self) -> bool:
        return not self.value & 0x80


@dataclass(frozen=True, slots=True)
class DataChannelOpen:
    """DATA_CHANNEL_OPEN; ``reliability`` is retransmissions or lifetime in ms by type."""

    channel_type: ChannelType
    priority: int
    reliability: int
    label: str
    protocol: str

    def serialize(self) -> bytes:
        label, protocol = self.label.encode(), self.protocol.encode()
        fixed = _OPEN_FIXED.pack(
            MESSAGE_OPEN,
            self.channel_type,
            self.priority,
            self.reliability,
            len(label),
            len(protocol),
        )
        return fixed + label + protocol

    @classmethod
    def parse(cls, data: bytes) -> Self:
        if len(data) < _OPEN_FIXED.size:
            raise ValueError("truncated DATA_CHANNEL_OPEN")
        kind, channel_type, priority, reliability, label_len, protocol_len = (
            _OPEN_FIXED.unpack_from(data)
        )
        if kind != MESSAGE_OPEN:
            raise ValueError(f"not a DATA_CHANNEL_OPEN: type {kind}")
        if len(data) != _OPEN_FIXED.size + label_len + protocol_len:
            raise ValueError("DATA_CHANNEL_OPEN length does not match its label and protocol")
        try:
            kind_enum = ChannelType(channel_type)
        except ValueError:
            raise ValueError(f"unknown channel type {channel_type:#x}") from None
        start = _OPEN_FIXED.size
        try:
            label = data[start : start + label_len].decode()
            protocol = data[start + label_len :].decode()
        except UnicodeDecodeError:
            raise ValueError("DATA_CHANNEL_OPEN label or protocol is not UTF-8") from None
        return cls(kind_enum, priority, reliability, label, protocol)

    @property
    def max_retransmits(self) -> int | None:
        kind = self.channel_type & 0x7F
        return self.reliability if kind == ChannelType.PARTIAL_RELIABLE_REXMIT else None

    @property
    def lifetime_ms(self) -> int | None:
        kind = self.channel_type & 0x7F
        return self.reliability if kind == ChannelType.PARTIAL_RELIABLE_TIMED else None


@dataclass(frozen=True, slots=True)
class DataChannelAck:
    def serialize(self) -> bytes:
        return bytes([MESSAGE_ACK])

    @classmethod
    def parse(cls, data: bytes) -> Self:
        if data != bytes([MESSAGE_ACK]):
            raise ValueError("bad DATA_CHANNEL_ACK")
        return cls()


def channel_type_for(
    ordered: bool, max_retransmits: int | None, lifetime_ms: int | None
) -> ChannelType:
    if max_retransmits is not None and lifetime_ms is not None:
        raise ValueError("a channel limits retransmissions or lifetime, not both")
    base = 0x01 if max_retransmits is not None else 0x02 if lifetime_ms is not None else 0x00
    return ChannelType(base | (0 if ordered else 0x80))


def parse_dcep(data: bytes) -> DataChannelOpen | DataChannelAck:
    """The dispatcher on the first byte."""
    if not data:
        raise ValueError("empty DCEP message")
    if data[0] == MESSAGE_OPEN:
        return DataChannelOpen.parse(data)
    if data[0] == MESSAGE_ACK:
        return DataChannelAck.parse(data)
    raise ValueError(f"unknown DCEP message type {data[0]}")
