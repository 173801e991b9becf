"""agent/rtc/dtls.py: DTLS-SRTP handshakes between two transports in virtual time.

Retransmissions are decided by OpenSSL against its own wall clock (see the module
docstring of agent/rtc/dtls.py), so the tests that lose flights run in a child process
under libfaketime, whose clock the pair driver sets to exactly the virtual `now`. One
child runs all those scenarios (module fixture `faketime_results`); each test asserts its
own scenario's record.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from OpenSSL import SSL

from agent.rtc.certificate import Certificate
from agent.rtc.dtls import (
    DtlsApplicationData,
    DtlsClosed,
    DtlsConnected,
    DtlsEvent,
    DtlsFailed,
    DtlsRole,
    DtlsState,
    DtlsTransport,
    SrtpProfile,
    split_records,
)
from tests.rtc.pair import Datagram, Pair

REPO = Path(__file__).resolve().parents[2]
CLIENT_CERT = Certificate.generate()
SERVER_CERT = Certificate.generate()
OTHER_CERT = Certificate.generate()


def make_pair(
    *,
    client_fingerprints: Sequence[tuple[str, str]] | None = None,
    server_fingerprints: Sequence[tuple[str, str]] | None = None,
    client_profiles: Sequence[SrtpProfile] | None = None,
    server_profiles: Sequence[SrtpProfile] | None = None,
) -> tuple[DtlsTransport, DtlsTransport]:
    """A client and a server that expect each other's real certificates unless told."""
    client_kwargs: dict[str, Any] = {}
    server_kwargs: dict[str, Any] = {}
    if client_profiles is not None:
        client_kwargs["srtp_profiles"] = client_profiles
    if server_profiles is not None:
        server_kwargs["srtp_profiles"] = server_profiles
    client = DtlsTransport(
        CLIENT_CERT,
        DtlsRole.CLIENT,
        client_fingerprints or [("sha-256", SERVER_CERT.fingerprint())],
        **client_kwargs,
    )
    server = DtlsTransport(
        SERVER_CERT,
        DtlsRole.SERVER,
        server_fingerprints or [("sha-256", CLIENT_CERT.fingerprint())],
        **server_kwargs,
    )
    return client, server


def events(transport: DtlsTransport) -> list[DtlsEvent]:
    out: list[DtlsEvent] = []
    while (event := transport.next_event()) is not None:
        out.append(event)
    return out


def settled(*transports: DtlsTransport) -> Callable[[], bool]:
    return lambda: all(t.state is not DtlsState.CONNECTING for t in transports)


def handshake(client: DtlsTransport, server: DtlsTransport, **pair_kwargs: Any) -> Pair:
    pair = Pair(client, server, **pair_kwargs)
    client.start(pair.now)
    server.start(pair.now)
    pair.run(settled(client, server))
    return pair


def assert_keys_mirror(client: DtlsTransport, server: DtlsTransport) -> None:
    assert client.srtp_keys is not None and server.srtp_keys is not None
    assert client.srtp_keys.profile is server.srtp_keys.profile
    assert client.srtp_keys.local_master == server.srtp_keys.remote_master
    assert client.srtp_keys.remote_master == server.srtp_keys.local_master
    assert client.srtp_keys.local_master != client.srtp_keys.remote_master
    length = client.srtp_keys.profile.master_length
    assert len(client.srtp_keys.local_master) == len(client.srtp_keys.remote_master) == length


# ------------------------------------------------------------------ handshakes


@pytest.mark.parametrize("profile", list(SrtpProfile))
@pytest.mark.parametrize("client_is_a", [True, False], ids=["client-first", "server-first"])
def test_pair_connects_with_mirrored_keys(profile: SrtpProfile, client_is_a: bool) -> None:
    client, server = make_pair(client_profiles=[profile], server_profiles=[profile])
    a, b = (client, server) if client_is_a else (server, client)
    pair = Pair(a, b)
    a.start(0.0)
    b.start(0.0)
    pair.run(settled(client, server))

    assert client.state is DtlsState.CONNECTED and server.state is DtlsState.CONNECTED
    assert pair.now == 0.0 and pair.timers_fired == []
    assert_keys_mirror(client, server)
    assert client.srtp_keys is not None and client.srtp_keys.profile is profile
    assert events(client) == [DtlsConnected(client.srtp_keys)]
    assert server.srtp_keys is not None
    assert events(server) == [DtlsConnected(server.srtp_keys)]
    assert client.get_timer() is None and server.get_timer() is None


def test_default_offer_prefers_gcm() -> None:
    client, server = make_pair()
    handshake(client, server)
    assert client.srtp_keys is not None
    assert client.srtp_keys.profile is SrtpProfile.AEAD_AES_128_GCM


def test_server_choice_falls_back_to_cm_sha1_80() -> None:
    client, server = make_pair(server_profiles=[SrtpProfile.AES128_CM_SHA1_80])
    handshake(client, server)
    assert_keys_mirror(client, server)
    assert client.srtp_keys is not None
    assert client.srtp_keys.profile is SrtpProfile.AES128_CM_SHA1_80


def test_server_starts_on_first_datagram_without_start() -> None:
    client, server = make_pair()
    pair = Pair(client, server)
    client.start(0.0)
    pair.run(settled(client, server))
    assert server.state is DtlsState.CONNECTED
    assert_keys_mirror(client, server)


def test_datagrams_stay_within_mtu() -> None:
    client, server = make_pair()
    pair = handshake(client, server)
    assert pair.delivered and all(len(d.data) <= 1200 for d in pair.delivered)


def test_keys_follow_rfc5764_layout_as_aiortc_reads_it() -> None:
    """An independent reading of the exported block: aiortc's own key/salt slicing."""
    # Imported here so the libfaketime child, which imports this module, stays quick.
    from aiortc.rtcdtlstransport import SRTP_AEAD_AES_128_GCM as AIORTC_GCM

    exported: list[bytes] = []
    raw_server = RawDtlsPeer(server=True, srtp=b"SRTP_AEAD_AES_128_GCM", exported=exported)
    client = DtlsTransport(CLIENT_CERT, DtlsRole.CLIENT, [("sha-256", SERVER_CERT.fingerprint())])
    pair = Pair(client, raw_server)
    client.start(0.0)
    pair.run(lambda: client.state is not DtlsState.CONNECTING and bool(exported))
    assert client.srtp_keys is not None
    material = exported[0]
    assert client.srtp_keys.local_master == AIORTC_GCM.get_key_and_salt(material, 0)
    assert client.srtp_keys.remote_master == AIORTC_GCM.get_key_and_salt(material, 1)


# -------------------------------------------------------------- fingerprints


@pytest.mark.parametrize("failing", [DtlsRole.CLIENT, DtlsRole.SERVER])
def test_fingerprint_mismatch_fails_without_keys(
    failing: DtlsRole, monkeypatch: pytest.MonkeyPatch
) -> None:
    exporters: list[SSL.Connection] = []
    real_export = SSL.Connection.export_keying_material

    def spy(conn: SSL.Connection, label: bytes, olen: int, context: bytes | None = None) -> bytes:
        exporters.append(conn)
        return real_export(conn, label, olen, context)

    monkeypatch.setattr(SSL.Connection, "export_keying_material", spy)
    wrong = [("sha-256", OTHER_CERT.fingerprint())]
    if failing is DtlsRole.CLIENT:
        client, server = make_pair(client_fingerprints=wrong)
        bad, good = client, server
    else:
        client, server = make_pair(server_fingerprints=wrong)
        bad, good = server, client
    handshake(client, server)

    assert bad.state is DtlsState.FAILED
    assert bad.srtp_keys is None
    assert events(bad) == [DtlsFailed("dtls fingerprint mismatch")]
    assert bad._conn not in exporters  # white box: no key material derived at all
    # The peer, whose check passed, is told to stop with an authenticated close_notify.
    assert good.state is DtlsState.CLOSED
    assert events(good)[-1] == DtlsClosed()


def test_the_strongest_hash_offered_decides() -> None:
    # A match under a weaker hash is no match when a stronger one is offered and differs.
    right = ("sha-256", CLIENT_CERT.fingerprint("sha-256"))
    wrong = ("sha-512", OTHER_CERT.fingerprint("sha-512"))
    client, server = make_pair(server_fingerprints=[right, wrong])
    handshake(client, server)
    assert events(server) == [DtlsFailed("dtls fingerprint mismatch")]


def test_fingerprints_of_several_possible_certificates_need_one_match() -> None:
    # RFC 8122 section 5: an offer may name every certificate it might use.
    fingerprints = [
        ("sha-256", OTHER_CERT.fingerprint("sha-256")),
        ("sha-256", CLIENT_CERT.fingerprint("sha-256")),
    ]
    client, server = make_pair(server_fingerprints=fingerprints)
    handshake(client, server)
    assert server.state is DtlsState.CONNECTED
    assert_keys_mirror(client, server)


def test_several_matching_fingerprints_and_unknown_ones_are_accepted() -> None:
    fingerprints = [
        ("md5", "00:11"),  # unsupported: ignored
        ("SHA-1", CLIENT_CERT.fingerprint("sha-1")),
        ("sha-384", CLIENT_CERT.fingerprint("sha-384").lower()),
    ]
    client, server = make_pair(server_fingerprints=fingerprints)
    handshake(client, server)
    assert server.state is DtlsState.CONNECTED
    assert_keys_mirror(client, server)


@pytest.mark.parametrize("fingerprints", [[("md5", "00:11:22")], [("sha-3", "AB")], []])
def test_no_supported_fingerprint_fails_at_start(fingerprints: list[tuple[str, str]]) -> None:
    client = DtlsTransport(CLIENT_CERT, DtlsRole.CLIENT, fingerprints)
    client.start(0.0)
    assert client.state is DtlsState.FAILED
    (event,) = events(client)
    assert isinstance(event, DtlsFailed)
    assert event.reason.startswith("dtls no supported fingerprint algorithm")
    for algorithm, _ in fingerprints:
        assert algorithm in event.reason
    assert client.datagrams_to_send() == []  # not even a ClientHello


def test_malformed_fingerprint_fails_with_its_algorithm() -> None:
    client = DtlsTransport(CLIENT_CERT, DtlsRole.CLIENT, [("sha-256", "AB:CD")])
    client.start(0.0)
    assert events(client) == [DtlsFailed("dtls malformed sha-256 fingerprint")]


# ------------------------------------------------------- other failure paths


def test_no_common_srtp_profile_fails_both_sides() -> None:
    client, server = make_pair(
        client_profiles=[SrtpProfile.AES128_CM_SHA1_80],
        server_profiles=[SrtpProfile.AEAD_AES_128_GCM],
    )
    handshake(client, server)
    for transport in (client, server):
        assert transport.state is DtlsState.FAILED
        assert transport.srtp_keys is None
        assert events(transport) == [DtlsFailed("dtls no srtp profile negotiated")]


def test_peer_fatal_alert_fails_client() -> None:
    # A server that can only do RSA key exchange with an ECDSA certificate: no shared cipher.
    raw_server = RawDtlsPeer(server=True, ciphers=b"ECDHE-RSA-AES128-GCM-SHA256")
    client = DtlsTransport(CLIENT_CERT, DtlsRole.CLIENT, [("sha-256", SERVER_CERT.fingerprint())])
    pair = Pair(client, raw_server)
    client.start(0.0)
    pair.run(settled(client))
    (event,) = events(client)
    assert isinstance(event, DtlsFailed)
    assert event.reason.startswith("dtls handshake failed: ")
    assert "alert" in event.reason
    assert client.srtp_keys is None


def test_handshake_error_fails_server() -> None:
    raw_client = RawDtlsPeer(server=False, ciphers=b"ECDHE-RSA-AES128-GCM-SHA256")
    server = DtlsTransport(SERVER_CERT, DtlsRole.SERVER, [("sha-256", CLIENT_CERT.fingerprint())])
    pair = Pair(raw_client, server)
    raw_client.start()
    pair.run(settled(server))
    assert events(server) == [DtlsFailed("dtls handshake failed: no shared cipher")]


def test_renegotiation_is_refused() -> None:
    """A second handshake could present a certificate the fingerprint check never saw."""
    raw_server = RawDtlsPeer(server=True)
    client = DtlsTransport(CLIENT_CERT, DtlsRole.CLIENT, [("sha-256", SERVER_CERT.fingerprint())])
    pair = Pair(client, raw_server)
    client.start(0.0)
    pair.run(settled(client))
    assert client.srtp_keys is not None
    assert events(client) == [DtlsConnected(client.srtp_keys)]
    sent_before = len(pair.delivered)
    assert raw_server.conn.renegotiate()
    raw_server.start()  # sends HelloRequest
    pair.pump()
    replies = [d.data for d in pair.delivered[sent_before:] if d.sender == 0]
    assert [data[0] for data in replies] == [21]  # an alert (no_renegotiation), no ClientHello
    assert raw_server.conn.renegotiate_pending()
    assert client.state is DtlsState.CONNECTED and events(client) == []


def test_gives_up_after_handshake_timeout_in_virtual_time() -> None:
    client, server = make_pair()
    pair = handshake(client, server, drop=lambda d: True)
    assert pair.now == 30.0
    for transport in (client, server):
        assert events(transport) == [DtlsFailed("dtls handshake timeout")]
        assert transport.get_timer() is None


def test_timer_is_rearmed_when_openssl_clock_has_not_reached_it() -> None:
    """`now` running ahead of OpenSSL's clock never makes up a retransmission."""
    client, _ = make_pair()
    client.start(0.0)
    assert len(client.datagrams_to_send()) == 1
    first = client.get_timer()
    assert first is not None and 0.9 < first <= 1.0  # OpenSSL's initial 1 s timer
    client.handle_timer(first)  # virtual time is there, OpenSSL's wall clock is not
    assert client.datagrams_to_send() == []
    second = client.get_timer()
    assert second is not None and second > first
    assert client.state is DtlsState.CONNECTING


# ------------------------------------------------------- data and closing


def test_application_data_both_ways() -> None:
    client, server = make_pair()
    pair = handshake(client, server)
    events(client), events(server)
    client.send_application_data(b"from client")
    server.send_application_data(b"from server")
    pair.pump()
    assert events(server) == [DtlsApplicationData(b"from client")]
    assert events(client) == [DtlsApplicationData(b"from server")]
    assert client.application_data_mtu > 1100


def test_send_before_connected_raises_and_after_close_is_dropped() -> None:
    client, server = make_pair()
    with pytest.raises(RuntimeError):
        client.send_application_data(b"too early")
    handshake(client, server)
    client.close()
    client.datagrams_to_send()
    client.send_application_data(b"too late")
    assert client.datagrams_to_send() == []


@pytest.mark.parametrize("closer", [DtlsRole.CLIENT, DtlsRole.SERVER])
def test_close_delivers_closed_to_peer(closer: DtlsRole) -> None:
    client, server = make_pair()
    pair = handshake(client, server)
    events(client), events(server)
    closing, peer = (client, server) if closer is DtlsRole.CLIENT else (server, client)
    closing.close()
    pair.pump()
    assert closing.state is DtlsState.CLOSED and events(closing) == [DtlsClosed()]
    assert peer.state is DtlsState.CLOSED and events(peer) == [DtlsClosed()]
    closing.close()  # idempotent
    assert events(closing) == []


def test_close_before_connected_sends_nothing() -> None:
    client, _ = make_pair()
    client.close()
    assert client.state is DtlsState.CLOSED
    assert events(client) == [DtlsClosed()]
    assert client.datagrams_to_send() == []


# ------------------------------------------------------------------ garbage


def dtls_like(content_types: Sequence[int] = (20, 21, 22, 23)) -> st.SearchStrategy[bytes]:
    """Byte strings shaped like DTLS records (right header, nonsense inside)."""

    def build(ctype: int, epoch: int, seq: int, body: bytes, honest_length: bool, n: int) -> bytes:
        length = len(body) if honest_length else n
        return (
            bytes([ctype])
            + b"\xfe\xfd"
            + epoch.to_bytes(2, "big")
            + seq.to_bytes(6, "big")
            + length.to_bytes(2, "big")
            + body
        )

    record = st.builds(
        build,
        st.sampled_from(content_types),
        st.integers(0, 2),
        st.integers(0, 2**48 - 1),
        st.binary(max_size=300),
        st.booleans(),
        st.integers(0, 65535),
    )
    return st.lists(record, min_size=1, max_size=3).map(b"".join)


garbage = st.one_of(st.binary(max_size=1500), dtls_like())
fuzz = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@fuzz
@given(datagrams=st.lists(garbage, min_size=1, max_size=4))
def test_garbage_before_handshake_never_raises(datagrams: list[bytes]) -> None:
    client, server = make_pair()
    client.start(0.0)
    client.datagrams_to_send()
    for data in datagrams:
        server.receive(data, 0.0)
        client.receive(data, 0.0)
    for transport in (client, server):
        assert transport.srtp_keys is None
        transport.datagrams_to_send()
        events(transport)


@fuzz
@given(datagrams=st.lists(garbage, min_size=1, max_size=4))
def test_garbage_after_handshake_never_raises(datagrams: list[bytes]) -> None:
    client, server = make_pair()
    pair = handshake(client, server)
    for data in datagrams:
        client.receive(data, pair.now)
        server.receive(data, pair.now)
    for transport in (client, server):
        assert transport.state in (DtlsState.CONNECTED, DtlsState.FAILED, DtlsState.CLOSED)
        events(transport)


@fuzz
@given(data=garbage, mtu=st.integers(1, 1500))
def test_split_records_keeps_every_byte_in_order(data: bytes, mtu: int) -> None:
    datagrams = split_records(data, mtu)
    assert b"".join(datagrams) == data
    assert all(datagrams)


def test_split_records_packs_whole_records_up_to_mtu() -> None:
    def record(n: int) -> bytes:
        return b"\x16\xfe\xfd" + bytes(8) + n.to_bytes(2, "big") + bytes(n)

    records = [record(487), record(487), record(487), record(87)]  # 500, 500, 500, 100 bytes
    assert split_records(b"".join(records), 1200) == [
        records[0] + records[1],
        records[2] + records[3],
    ]


# --------------------------------------------- retransmissions (libfaketime)

FAKETIME_LIBRARIES = (
    "/usr/lib/*/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
)


def _find_libfaketime() -> str:
    for pattern in FAKETIME_LIBRARIES:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    pytest.fail(
        "libfaketime is needed to drive OpenSSL's DTLS retransmission clock in virtual time; "
        "install it with `apt-get install faketime`"
    )


@pytest.fixture(scope="module")
def faketime_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    library = _find_libfaketime()
    clock_file = tmp_path_factory.mktemp("faketime") / "clock"
    clock_file.write_text(f"{int(time.time())}.000000\n")
    env = {
        **os.environ,
        "LD_PRELOAD": os.pathsep.join(filter(None, [library, os.environ.get("LD_PRELOAD")])),
        "FAKETIME_TIMESTAMP_FILE": str(clock_file),
        "FAKETIME_FMT": "%s",
        "FAKETIME_NO_CACHE": "1",  # re-read the clock file on every clock call
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    child = subprocess.run(
        [sys.executable, "-c", "from tests.rtc.test_dtls import faketime_child; faketime_child()"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if child.returncode != 0 or not child.stdout.strip():
        pytest.fail(f"faketime child failed ({child.returncode}):\n{child.stderr}")
    results: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
    assert results["clock_is_faked"], "libfaketime was loaded but did not take over the clock"
    return results


def scenario(results: dict[str, Any], name: str) -> dict[str, Any]:
    record: dict[str, Any] = results[name]
    if "error" in record:
        pytest.fail(f"scenario {name} raised in the faketime child:\n{record['error']}")
    return record


def test_lost_client_hello_and_lost_server_flight_still_connect(
    faketime_results: dict[str, Any],
) -> None:
    record = scenario(faketime_results, "lost_first_flights")
    # Client: ClientHello at 0 (lost), again at 1.0 (OpenSSL's initial 1 s timer).
    # Server: its flight at 1.0 (lost), again at 2.0; the handshake ends at 2.0.
    assert record["dropped"] == [[0, 0, 0.0], [1, 0, 1.0]]
    assert record["timers_fired"] == [[1.0, 0], [2.0, 1]]
    assert record["delivered"] == [[0, 1, 1.0], [1, 1, 2.0], [0, 2, 2.0], [1, 2, 2.0]]
    assert record["states"] == ["connected", "connected"]
    assert record["keys_mirror"] is True


def test_lost_final_server_flight_is_resent_when_client_retransmits(
    faketime_results: dict[str, Any],
) -> None:
    record = scenario(faketime_results, "lost_final_flight")
    # The server is already connected; the client's retransmitted Finished at 1.0 makes
    # OpenSSL on the server resend its ChangeCipherSpec+Finished.
    assert record["dropped"] == [[1, 1, 0.0]]
    assert record["timers_fired"] == [[1.0, 0]]
    assert record["delivered"][-2:] == [[0, 2, 1.0], [1, 2, 1.0]]
    assert record["states"] == ["connected", "connected"]
    assert record["keys_mirror"] is True


def test_retransmissions_back_off_then_give_up(faketime_results: dict[str, Any]) -> None:
    record = scenario(faketime_results, "blackhole")
    assert [d[2] for d in record["dropped"]] == [0.0, 1.0, 3.0, 7.0, 15.0]
    assert record["failed_at"] == 30.0
    assert record["reasons"] == ["dtls handshake timeout", "dtls handshake timeout"]


def _run_faketime_scenario(
    set_clock: Callable[[float], None], drop: Callable[[Datagram], bool]
) -> dict[str, Any]:
    client, server = make_pair()
    pair = Pair(client, server, drop=drop, on_advance=set_clock)
    client.start(pair.now)
    server.start(pair.now)
    pair.run(settled(client, server), max_time=60.0)
    record: dict[str, Any] = {
        "dropped": [[d.sender, d.batch, d.now] for d in pair.dropped],
        "delivered": [[d.sender, d.batch, d.now] for d in pair.delivered],
        "timers_fired": [list(t) for t in pair.timers_fired],
        "states": [client.state.value, server.state.value],
        "failed_at": pair.now,
        "reasons": [
            e.reason for t in (client, server) for e in events(t) if isinstance(e, DtlsFailed)
        ],
    }
    try:
        assert_keys_mirror(client, server)
        record["keys_mirror"] = True
    except AssertionError:
        record["keys_mirror"] = False
    return record


FAKETIME_SCENARIOS: dict[str, Callable[[Datagram], bool]] = {
    "lost_first_flights": lambda d: d.batch == 0,
    "lost_final_flight": lambda d: d.sender == 1 and d.batch == 1,
    "blackhole": lambda d: True,
}


def faketime_child() -> None:
    """Entry point of the child process that runs under libfaketime."""
    clock_file = Path(os.environ["FAKETIME_TIMESTAMP_FILE"])
    base = float(clock_file.read_text())

    def set_clock(now: float) -> None:
        clock_file.write_text(f"{base + now:.6f}\n")

    results: dict[str, Any] = {"clock_is_faked": time.time() == base}
    for name, drop in FAKETIME_SCENARIOS.items():
        try:
            results[name] = _run_faketime_scenario(set_clock, drop)
        except Exception:
            results[name] = {"error": traceback.format_exc()}
    print(json.dumps(results))


# ------------------------------------------------------------ raw OpenSSL peer


class RawDtlsPeer:
    """A plain pyOpenSSL DTLS endpoint configured in ways DtlsTransport never is.

    It is real OpenSSL, not an imitation; it only lets a test pick ciphers or read the
    exported keying material directly.
    """

    def __init__(
        self,
        *,
        server: bool,
        ciphers: bytes | None = None,
        srtp: bytes = b"SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80",
        exported: list[bytes] | None = None,
    ) -> None:
        cert = SERVER_CERT if server else CLIENT_CERT
        ctx = SSL.Context(SSL.DTLS_METHOD)
        ctx.set_options(SSL.OP_NO_QUERY_MTU)
        ctx.use_certificate(cert.x509)
        ctx.use_privatekey(cert.private_key)
        ctx.set_verify(SSL.VERIFY_PEER, lambda *args: True)
        ctx.set_tlsext_use_srtp(srtp)
        if ciphers is not None:
            ctx.set_cipher_list(ciphers)
        self.conn = SSL.Connection(ctx, None)
        if server:
            self.conn.set_accept_state()
        else:
            self.conn.set_connect_state()
        self.conn.set_ciphertext_mtu(1200)
        self.exported = exported
        self.done = False

    def start(self) -> None:
        self._step()

    def _step(self) -> None:
        try:
            self.conn.do_handshake()
        except SSL.WantReadError:
            return
        except SSL.Error:
            return
        if not self.done and self.exported is not None:
            self.exported.append(self.conn.export_keying_material(b"EXTRACTOR-dtls_srtp", 56))
        self.done = True

    def receive(self, data: bytes, now: float) -> None:
        self.conn.bio_write(data)
        self._step()

    def datagrams_to_send(self) -> list[bytes]:
        out: list[bytes] = []
        while True:
            try:
                out.append(self.conn.bio_read(65536))
            except SSL.Error:
                return out

    def get_timer(self) -> float | None:
        return None

    def handle_timer(self, now: float) -> None:
        pass
