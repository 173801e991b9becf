"""Every event an Association emits, in one module."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Connected:
    """The handshake finished: messages may flow both ways."""


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A whole user message, reassembled and, if ordered, in its stream's order."""

    stream_id: int
    ppid: int
    data: bytes
    unordered: bool = False


@dataclass(frozen=True, slots=True)
class StreamsReset:
    """Streams reset (RFC 6525): ``incoming`` ones by the peer, else our own outgoing ones."""

    stream_ids: tuple[int, ...]
    incoming: bool


@dataclass(frozen=True, slots=True)
class BufferedAmountLow:
    """A stream's unsent bytes fell to its threshold: the caller may send more."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class Closed:
    """The association ended: ``reason`` says why (shutdown, abort by either side, error)."""

    reason: str


AssociationEvent = Connected | MessageReceived | StreamsReset | BufferedAmountLow | Closed
