"""agent/rtc/srtp.py: SRTP/SRTCP with keys from a real DTLS handshake."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.rtc.certificate import Certificate
from agent.rtc.dtls import DtlsRole, DtlsState, DtlsTransport, SrtpKeys, SrtpProfile
from agent.rtc.srtp import SrtpContext, SrtpError
from tests.rtc.pair import Pair

CLIENT_CERT = Certificate.generate()
SERVER_CERT = Certificate.generate()
TAG_LENGTH = {SrtpProfile.AEAD_AES_128_GCM: 16, SrtpProfile.AES128_CM_SHA1_80: 10}
# SRTCP adds the 4-byte E flag + index word to the tag.
SRTCP_OVERHEAD = {profile: tag + 4 for profile, tag in TAG_LENGTH.items()}


def dtls_keys(profile: SrtpProfile) -> tuple[SrtpKeys, SrtpKeys]:
    """(client keys, server keys) from a real handshake that negotiated `profile`."""
    client = DtlsTransport(
        CLIENT_CERT,
        DtlsRole.CLIENT,
        [("sha-256", SERVER_CERT.fingerprint())],
        srtp_profiles=[profile],
    )
    server = DtlsTransport(
        SERVER_CERT,
        DtlsRole.SERVER,
        [("sha-256", CLIENT_CERT.fingerprint())],
        srtp_profiles=[profile],
    )
    pair = Pair(client, server)
    client.start(0.0)
    pair.run(lambda: client.state is DtlsState.CONNECTED and server.state is DtlsState.CONNECTED)
    assert client.srtp_keys is not None and server.srtp_keys is not None
    return client.srtp_keys, server.srtp_keys


@pytest.fixture(params=list(SrtpProfile), ids=lambda p: p.name)
def contexts(request: pytest.FixtureRequest) -> tuple[SrtpContext, SrtpContext]:
    client_keys, server_keys = dtls_keys(request.param)
    return SrtpContext(client_keys), SrtpContext(server_keys)


def rtp(seq: int, payload: bytes = b"\x65" * 1000, ssrc: int = 0x1234ABCD) -> bytes:
    # V=2, no padding/extension/CSRC, marker clear, PT 96.
    return struct.pack("!BBHII", 0x80, 96, seq, seq * 3000, ssrc) + payload


def rtcp_sender_report(ssrc: int = 0x1234ABCD) -> bytes:
    # V=2, RC=0, PT=200 (SR), length 6 words: SSRC, NTP(2), RTP ts, packets, octets.
    return struct.pack("!BBHIIIIII", 0x80, 200, 6, ssrc, 1, 2, 3, 4, 5)


def test_rtp_round_trips_both_ways(contexts: tuple[SrtpContext, SrtpContext]) -> None:
    client, server = contexts
    for seq in range(1, 20):
        packet = rtp(seq)
        protected = client.protect(packet)
        assert protected[:12] == packet[:12]  # the header stays readable
        assert protected[12:] != packet[12:]
        assert len(protected) == len(packet) + TAG_LENGTH[client.profile]
        assert server.unprotect(protected) == packet
        reply = rtp(seq, b"back", ssrc=0x55)
        assert client.unprotect(server.protect(reply)) == reply


def test_rtcp_round_trips_both_ways(contexts: tuple[SrtpContext, SrtpContext]) -> None:
    client, server = contexts
    report = rtcp_sender_report()
    protected = client.protect_rtcp(report)
    assert len(protected) == len(report) + SRTCP_OVERHEAD[client.profile]
    assert server.unprotect_rtcp(protected) == report
    answer = rtcp_sender_report(ssrc=0x55)
    assert client.unprotect_rtcp(server.protect_rtcp(answer)) == answer


def test_tampered_packet_is_rejected(contexts: tuple[SrtpContext, SrtpContext]) -> None:
    client, server = contexts
    protected = bytearray(client.protect(rtp(1)))
    protected[40] ^= 0x01
    with pytest.raises(SrtpError, match="authentication failure"):
        server.unprotect(bytes(protected))


def test_tampered_rtcp_is_rejected(contexts: tuple[SrtpContext, SrtpContext]) -> None:
    client, server = contexts
    protected = bytearray(client.protect_rtcp(rtcp_sender_report()))
    protected[10] ^= 0x80
    with pytest.raises(SrtpError, match="authentication failure"):
        server.unprotect_rtcp(bytes(protected))


def test_replayed_packet_is_rejected(contexts: tuple[SrtpContext, SrtpContext]) -> None:
    client, server = contexts
    protected = client.protect(rtp(7))
    server.unprotect(protected)
    with pytest.raises(SrtpError, match="replay"):
        server.unprotect(protected)


def test_replayed_rtcp_is_rejected(contexts: tuple[SrtpContext, SrtpContext]) -> None:
    client, server = contexts
    protected = client.protect_rtcp(rtcp_sender_report())
    server.unprotect_rtcp(protected)
    with pytest.raises(SrtpError, match="replay"):
        server.unprotect_rtcp(protected)


def test_same_sequence_number_is_never_protected_twice(
    contexts: tuple[SrtpContext, SrtpContext],
) -> None:
    client, _ = contexts
    client.protect(rtp(9))
    with pytest.raises(SrtpError):
        client.protect(rtp(9, b"different payload, same nonce"))


def test_own_packets_do_not_unprotect_with_own_context(
    contexts: tuple[SrtpContext, SrtpContext],
) -> None:
    client, _ = contexts
    with pytest.raises(SrtpError):
        client.unprotect(client.protect(rtp(1)))


def test_oversized_packet_is_an_srtp_error(contexts: tuple[SrtpContext, SrtpContext]) -> None:
    client, _ = contexts
    with pytest.raises(SrtpError, match="too long"):
        client.protect(rtp(1, bytes(1500)))


def test_srtp_error_is_a_value_error() -> None:
    assert issubclass(SrtpError, ValueError)


def test_wrong_key_length_is_refused() -> None:
    client_keys, _ = dtls_keys(SrtpProfile.AES128_CM_SHA1_80)
    short = SrtpKeys(client_keys.profile, client_keys.local_master[:-1], client_keys.remote_master)
    with pytest.raises(ValueError, match="local SRTP master key"):
        SrtpContext(short)


GCM_KEYS = dtls_keys(SrtpProfile.AEAD_AES_128_GCM)
CM_KEYS = dtls_keys(SrtpProfile.AES128_CM_SHA1_80)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=1600), rtcp=st.booleans(), gcm=st.booleans())
def test_garbage_is_always_rejected_with_srtp_error(data: bytes, rtcp: bool, gcm: bool) -> None:
    # Unauthenticated bytes never pass (a forgery needs an 80- or 128-bit tag right), and
    # the only way they fail is SrtpError.
    context = SrtpContext((GCM_KEYS if gcm else CM_KEYS)[1])
    with pytest.raises(SrtpError):
        if rtcp:
            context.unprotect_rtcp(data)
        else:
            context.unprotect(data)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), rtcp=st.booleans(), gcm=st.booleans())
def test_any_change_to_a_protected_packet_is_rejected(
    data: st.DataObject, rtcp: bool, gcm: bool
) -> None:
    client_keys, server_keys = GCM_KEYS if gcm else CM_KEYS
    sender, receiver = SrtpContext(client_keys), SrtpContext(server_keys)
    packet = sender.protect_rtcp(rtcp_sender_report()) if rtcp else sender.protect(rtp(1))
    changed = bytearray(packet)
    for index in data.draw(st.sets(st.integers(0, len(packet) - 1), min_size=1), "bytes"):
        changed[index] ^= data.draw(st.integers(1, 255), f"xor at {index}")
    with pytest.raises(SrtpError):
        if rtcp:
            receiver.unprotect_rtcp(bytes(changed))
        else:
            receiver.unprotect(bytes(changed))
    # ...while the packet as sent still passes: the context was not left broken.
    unprotect = receiver.unprotect_rtcp if rtcp else receiver.unprotect
    assert unprotect(packet) == (rtcp_sender_report() if rtcp else rtp(1))


@pytest.mark.parametrize("profile", list(SrtpProfile), ids=lambda p: p.name)
def test_protect_parts_equals_protect_of_the_joined_packet(profile: SrtpProfile) -> None:
    keys, peer_keys = dtls_keys(profile)
    joined, parts, receiver = SrtpContext(keys), SrtpContext(keys), SrtpContext(peer_keys)
    for seq in range(5):
        packet = rtp(seq, payload=bytes([seq]) * (200 + seq))
        protected = parts.protect_parts(packet[:12], packet[12:])
        assert protected == joined.protect(packet)
        assert receiver.unprotect(protected) == packet


def test_protect_parts_refuses_oversized_and_repeated_packets(
    contexts: tuple[SrtpContext, SrtpContext],
) -> None:
    sender, _ = contexts
    with pytest.raises(SrtpError, match="too long"):
        sender.protect_parts(rtp(1)[:12], b"\x00" * 1400)
    packet = rtp(2)
    sender.protect_parts(packet[:12], packet[12:])
    with pytest.raises(SrtpError, match="srtp protect failed"):
        sender.protect_parts(packet[:12], packet[12:])
