"""Chunk bundling into packets of at most the MTU (RFC 9260 6.10)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from agent.rtc.sctp.data_chunks import Data
from agent.rtc.sctp.packet import COMMON_HEADER_SIZE, serialize_packet


class _Serializable(Protocol):
    def serialize(self) -> bytes: ...


class PacketBuilder:
    """Control chunks first, then DATA, packed into as few packets as fit the MTU.

    A chunk queued with its own ``tag`` (INIT with 0, INIT ACK with the INIT's tag) travels
    alone, as RFC 9260 requires of both.
    """

    def __init__(self, source_port: int, destination_port: int, mtu: int) -> None:
        self.tag = 0
        self._ports = (source_port, destination_port)
        self._room = mtu - COMMON_HEADER_SIZE
        self._control: list[tuple[bytes, int | None]] = []
        self._out: list[bytes] = []

    def control(self, chunk: _Serializable, tag: int | None = None) -> None:
        self._control.append((chunk.serialize(), tag))

    def discard(self) -> None:
        self._control.clear()

    def take(self) -> list[bytes]:
        out, self._out = self._out, []
        return out

    def flush_control(self) -> None:
        self.build(None)

    def build(self, data_for: Callable[[int], list[Data]] | None) -> None:
        """Emit packets: queued control chunks, then whatever ``data_for(space)`` gives."""
        current: list[bytes] = []
        space = self._room
        for chunk, tag in self._control:
            if tag is not None:
                self._emit([chunk], tag)
                continue
            if len(chunk) > space and current:
                self._emit(current, self.tag)
                current, space = [], self._room
            current.append(chunk)
            space -= len(chunk)
        self._control.clear()
        while data_for is not None:
            chunks = data_for(space) if space > 64 else []
            if not chunks:
                if current:
                    self._emit(current, self.tag)
                    current, space = [], self._room
                    continue
                break
            for data_chunk in chunks:
                encoded = data_chunk.serialize()
                current.append(encoded)
                space -= len(encoded)
        if current:
            self._emit(current, self.tag)

    def _emit(self, chunks: list[bytes], tag: int) -> None:
        self._out.append(serialize_packet(self._ports[0], self._ports[1], tag, chunks))
