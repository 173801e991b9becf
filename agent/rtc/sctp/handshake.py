"""The four-way handshake's chunks (RFC 9260 5.1): INIT, INIT ACK with a state cookie."""

from __future__ import annotations

import struct

from agent.rtc.sctp.chunks import Init, InitAck
from agent.rtc.sctp.cookie import StateCookie
from agent.rtc.sctp.data_chunks import ForwardTsn
from agent.rtc.sctp.params import (
    PARAM_FORWARD_TSN_SUPPORTED,
    PARAM_STATE_COOKIE,
    PARAM_SUPPORTED_EXTENSIONS,
    Tlv,
)
from agent.rtc.sctp.reconfig import ReConfig

# Both directions use every stream id a data channel can have (RFC 8831 6.2).
MAX_STREAMS = 0xFFFF


def our_params() -> tuple[Tlv, ...]:
    """Forward-TSN-Supported plus Supported Extensions: browsers expect both."""
    extensions = bytes([ForwardTsn.TYPE, ReConfig.TYPE])
    return (
        Tlv(PARAM_SUPPORTED_EXTENSIONS, extensions),
        Tlv(PARAM_FORWARD_TSN_SUPPORTED, b""),
    )


def build_init(tag: int, rwnd: int, initial_tsn: int) -> Init:
    return Init(tag, rwnd, MAX_STREAMS, MAX_STREAMS, initial_tsn, our_params())


def build_init_ack(
    init: Init, *, tag: int, rwnd: int, initial_tsn: int, key: bytes, now: float
) -> InitAck:
    """Answer an INIT without keeping state: everything we need is in the signed cookie."""
    extensions = init.supported_extensions
    cookie = StateCookie(
        created=now,
        local_tag=tag,
        peer_tag=init.initiate_tag,
        peer_initial_tsn=init.initial_tsn,
        peer_rwnd=init.a_rwnd,
        peer_outbound_streams=init.outbound_streams,
        peer_inbound_streams=init.inbound_streams,
        peer_forward_tsn=ForwardTsn.TYPE in extensions,
        peer_reconfig=ReConfig.TYPE in extensions,
    )
    params = (Tlv(PARAM_STATE_COOKIE, cookie.sign(key)), *our_params())
    return InitAck(tag, rwnd, MAX_STREAMS, MAX_STREAMS, initial_tsn, params)


def cookie_from_init_ack(ack: InitAck, local_tag: int, now: float) -> StateCookie:
    """What the initiator knows of the peer once its INIT ACK arrives (same shape)."""
    extensions = ack.supported_extensions
    return StateCookie(
        created=now,
        local_tag=local_tag,
        peer_tag=ack.initiate_tag,
        peer_initial_tsn=ack.initial_tsn,
        peer_rwnd=ack.a_rwnd,
        peer_outbound_streams=ack.outbound_streams,
        peer_inbound_streams=ack.inbound_streams,
        peer_forward_tsn=ForwardTsn.TYPE in extensions,
        peer_reconfig=ReConfig.TYPE in extensions,
    )


def heartbeat_info(now: float, nonce: int) -> bytes:
    return struct.pack("!dQ", now, nonce)


def read_heartbeat_info(info: bytes) -> tuple[float, int] | None:
    if len(info) != 16:
        return None
    sent, nonce = struct.unpack("!dQ", info)
    return sent, nonce
