"""RE-CONFIG chunk (RFC 6525 3.1) with the stream reset parameters WebRTC uses."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar, Self

from agent.rtc.sctp.params import Tlv, chunk_body, chunk_bytes, parse_tlvs, serialize_tlvs

PARAM_OUTGOING_RESET = 13
PARAM_INCOMING_RESET = 14
PARAM_RESPONSE = 16

RESULT_SUCCESS_NOTHING_TO_DO = 0
RESULT_SUCCESS_PERFORMED = 1
RESULT_DENIED = 2
RESULT_ERROR_WRONG_SSN = 3
RESULT_ERROR_REQUEST_IN_PROGRESS = 4
RESULT_ERROR_BAD_SEQUENCE = 5
RESULT_IN_PROGRESS = 6


def _stream_ids(value: bytes) -> tuple[int, ...]:
    if len(value) % 2:
        raise ValueError("odd stream list length")
    return struct.unpack(f"!{len(value) // 2}H", value)


@dataclass(frozen=True, slots=True)
class OutgoingResetRequest:
    """We reset our outgoing streams (all if ``stream_ids`` is empty) after ``last_tsn``."""

    request_seq: int
    response_seq: int
    last_tsn: int
    stream_ids: tuple[int, ...]

    def to_tlv(self) -> Tlv:
        head = struct.pack("!III", self.request_seq, self.response_seq, self.last_tsn)
        ids = struct.pack(f"!{len(self.stream_ids)}H", *self.stream_ids)
        return Tlv(PARAM_OUTGOING_RESET, head + ids)

    @classmethod
    def from_tlv(cls, tlv: Tlv) -> Self:
        if len(tlv.value) < 12:
            raise ValueError("truncated outgoing reset request")
        request, response, last = struct.unpack_from("!III", tlv.value)
        return cls(request, response, last, _stream_ids(tlv.value[12:]))


@dataclass(frozen=True, slots=True)
class IncomingResetRequest:
    """We ask the peer to reset its outgoing streams (our incoming ones)."""

    request_seq: int
    stream_ids: tuple[int, ...]

    def to_tlv(self) -> Tlv:
        ids = struct.pack(f"!{len(self.stream_ids)}H", *self.stream_ids)
        return Tlv(PARAM_INCOMING_RESET, struct.pack("!I", self.request_seq) + ids)

    @classmethod
    def from_tlv(cls, tlv: Tlv) -> Self:
        if len(tlv.value) < 4:
            raise ValueError("truncated incoming reset request")
        (request,) = struct.unpack_from("!I", tlv.value)
        return cls(request, _stream_ids(tlv.value[4:]))


@dataclass(frozen=True, slots=True)
class ReconfigResponse:
    response_seq: int
    result: int

    def to_tlv(self) -> Tlv:
        return Tlv(PARAM_RESPONSE, struct.pack("!II", self.response_seq, self.result))

    @classmethod
    def from_tlv(cls, tlv: Tlv) -> Self:
        # The optional next-TSN fields only matter for the SSN/TSN reset we never request.
        if len(tlv.value) not in (8, 16):
            raise ValueError("bad re-configuration response length")
        return cls(*struct.unpack_from("!II", tlv.value))


ReconfigParam = OutgoingResetRequest | IncomingResetRequest | ReconfigResponse
_PARAM_TYPES: dict[int, type[ReconfigParam]] = {
    PARAM_OUTGOING_RESET: OutgoingResetRequest,
    PARAM_INCOMING_RESET: IncomingResetRequest,
    PARAM_RESPONSE: ReconfigResponse,
}


@dataclass(frozen=True, slots=True)
class ReConfig:
    """RE-CONFIG: one or two requests/responses (RFC 6525 3.1 allows at most two)."""

    TYPE: ClassVar[int] = 130
    params: tuple[ReconfigParam, ...]

    def serialize(self) -> bytes:
        return chunk_bytes(self.TYPE, 0, serialize_tlvs(p.to_tlv() for p in self.params))

    @classmethod
    def parse(cls, data: bytes) -> Self:
        _flags, body = chunk_body(data, cls.TYPE)
        tlvs = parse_tlvs(body)
        if not 1 <= len(tlvs) <= 2:
            raise ValueError("RE-CONFIG must carry one or two parameters")
        params: list[ReconfigParam] = []
        for tlv in tlvs:
            kind = _PARAM_TYPES.get(tlv.type)
            if kind is None:
                raise ValueError(f"unsupported RE-CONFIG parameter {tlv.type}")
            params.append(kind.from_tlv(tlv))
        return cls(tuple(params))
