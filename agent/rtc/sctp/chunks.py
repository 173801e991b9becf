"""Handshake and control chunks (RFC 9260 3.3): INIT, INIT ACK, COOKIE, HEARTBEAT, ABORT,
SHUTDOWN, ERROR. DATA, SACK and FORWARD TSN are in data_chunks; RE-CONFIG in reconfig."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar, Self, TypeVar

from agent.rtc.sctp.params import (
    PARAM_FORWARD_TSN_SUPPORTED,
    PARAM_HEARTBEAT_INFO,
    PARAM_STATE_COOKIE,
    PARAM_SUPPORTED_EXTENSIONS,
    Tlv,
    chunk_body,
    chunk_bytes,
    find_tlv,
    parse_tlvs,
    serialize_tlvs,
)

# Bit T of ABORT and SHUTDOWN COMPLETE: the verification tag is the sender's own.
FLAG_T = 0x01

_INIT_FIXED = struct.Struct("!IIHHI")
_I = TypeVar("_I", bound="Init")


@dataclass(frozen=True, slots=True)
class Init:
    """INIT: the initiator's tag, window, stream counts, initial TSN and parameters."""

    TYPE: ClassVar[int] = 1
    initiate_tag: int
    a_rwnd: int
    outbound_streams: int
    inbound_streams: int
    initial_tsn: int
    params: tuple[Tlv, ...] = ()

    def serialize(self) -> bytes:
        fixed = _INIT_FIXED.pack(
            self.initiate_tag,
            self.a_rwnd,
            self.outbound_streams,
            self.inbound_streams,
            self.initial_tsn,
        )
        return chunk_bytes(self.TYPE, 0, fixed + serialize_tlvs(self.params))

    @classmethod
    def parse(cls, data: bytes) -> Self:
        return _parse_init(cls, data)

    @property
    def supported_extensions(self) -> frozenset[int]:
        found = find_tlv(self.params, PARAM_SUPPORTED_EXTENSIONS)
        kinds = set(found.value) if found else set()
        if find_tlv(self.params, PARAM_FORWARD_TSN_SUPPORTED):
            kinds.add(192)
        return frozenset(kinds)

    @property
    def cookie(self) -> bytes | None:
        found = find_tlv(self.params, PARAM_STATE_COOKIE)
        return found.value if found else None


def _parse_init(cls: type[_I], data: bytes) -> _I:
    _flags, body = chunk_body(data, cls.TYPE)
    if len(body) < _INIT_FIXED.size:
        raise ValueError("truncated INIT")
    tag, rwnd, outbound, inbound, tsn = _INIT_FIXED.unpack_from(body)
    if tag == 0:
        raise ValueError("INIT with initiate tag 0")
    if outbound == 0 or inbound == 0:
        raise ValueError("INIT with zero streams")
    params = tuple(parse_tlvs(body[_INIT_FIXED.size :]))
    return cls(tag, rwnd, outbound, inbound, tsn, params)


@dataclass(frozen=True, slots=True)
class InitAck(Init):
    """INIT ACK: the same fields as INIT; carries the responder's state cookie."""

    TYPE: ClassVar[int] = 2

    @classmethod
    def parse(cls, data: bytes) -> Self:
        chunk = _parse_init(cls, data)
        if chunk.cookie is None:
            raise ValueError("INIT ACK without state cookie")
        return chunk


@dataclass(frozen=True, slots=True)
class _Opaque:
    """A chunk whose body is one opaque value (subclasses set TYPE)."""

    TYPE: ClassVar[int] = -1
    value: bytes = b""

    def serialize(self) -> bytes:
        return chunk_bytes(self.TYPE, 0, self.value)

    @classmethod
    def parse(cls, data: bytes) -> Self:
        _flags, body = chunk_body(data, cls.TYPE)
        return cls(body)


@dataclass(frozen=True, slots=True)
class CookieEcho(_Opaque):
    TYPE: ClassVar[int] = 10


@dataclass(frozen=True, slots=True)
class _Empty:
    TYPE: ClassVar[int] = -1

    def serialize(self) -> bytes:
        return chunk_bytes(self.TYPE, 0, b"")

    @classmethod
    def parse(cls, data: bytes) -> Self:
        chunk_body(data, cls.TYPE)
        return cls()


@dataclass(frozen=True, slots=True)
class CookieAck(_Empty):
    TYPE: ClassVar[int] = 11


@dataclass(frozen=True, slots=True)
class ShutdownAck(_Empty):
    TYPE: ClassVar[int] = 8


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """HEARTBEAT: one Heartbeat Info parameter, echoed verbatim by HEARTBEAT ACK."""

    TYPE: ClassVar[int] = 4
    info: bytes

    def serialize(self) -> bytes:
        return chunk_bytes(self.TYPE, 0, Tlv(PARAM_HEARTBEAT_INFO, self.info).serialize())

    @classmethod
    def parse(cls, data: bytes) -> Self:
        _flags, body = chunk_body(data, cls.TYPE)
        found = find_tlv(parse_tlvs(body), PARAM_HEARTBEAT_INFO)
        if found is None:
            raise ValueError("HEARTBEAT without heartbeat info")
        return cls(found.value)


@dataclass(frozen=True, slots=True)
class HeartbeatAck(Heartbeat):
    TYPE: ClassVar[int] = 5


@dataclass(frozen=True, slots=True)
class Abort:
    """ABORT with its error causes; ``reflected`` is the T bit."""

    TYPE: ClassVar[int] = 6
    causes: tuple[Tlv, ...] = ()
    reflected: bool = False

    def serialize(self) -> bytes:
        return chunk_bytes(self.TYPE, FLAG_T if self.reflected else 0, serialize_tlvs(self.causes))

    @classmethod
    def parse(cls, data: bytes) -> Self:
        flags, body = chunk_body(data, cls.TYPE)
        return cls(tuple(parse_tlvs(body)), bool(flags & FLAG_T))


@dataclass(frozen=True, slots=True)
class Error(Abort):
    """ERROR: causes the peer reports without ending the association."""

    TYPE: ClassVar[int] = 9


@dataclass(frozen=True, slots=True)
class ShutdownComplete:
    TYPE: ClassVar[int] = 14
    reflected: bool = False

    def serialize(self) -> bytes:
        return chunk_bytes(self.TYPE, FLAG_T if self.reflected else 0, b"")

    @classmethod
    def parse(cls, data: bytes) -> Self:
        flags, _body = chunk_body(data, cls.TYPE)
        return cls(bool(flags & FLAG_T))


@dataclass(frozen=True, slots=True)
class Shutdown:
    """SHUTDOWN: the sender's cumulative TSN ack."""

    TYPE: ClassVar[int] = 7
    cumulative_tsn: int

    def serialize(self) -> bytes:
        return chunk_bytes(self.TYPE, 0, struct.pack("!I", self.cumulative_tsn))

    @classmethod
    def parse(cls, data: bytes) -> Self:
        _flags, body = chunk_body(data, cls.TYPE)
        if len(body) != 4:
            raise ValueError("SHUTDOWN body must be 4 bytes")
        return cls(struct.unpack("!I", body)[0])


@dataclass(frozen=True, slots=True)
class UnknownChunk:
    """A chunk type we do not implement, kept so its high bits can decide what to do."""

    type: int
    flags: int
    body: bytes

    def serialize(self) -> bytes:
        return chunk_bytes(self.type, self.flags, self.body)
