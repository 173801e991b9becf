"""DTLS 1.2 with the use_srtp extension (RFC 5764), sans-IO, on pyOpenSSL memory BIOs.

Shape (after mediasoup's DtlsTransport): datagram in -> handshake step -> on completion check
the peer certificate against the signalled fingerprints of the strongest hash we support
(constant-time; one match suffices, RFC 8122 section 5, as an offer may name several
certificates) -> read the negotiated SRTP profile -> export keying material -> CONNECTED
with `SrtpKeys`. Every failure, whatever its cause, goes through `_fail()`: the transport
stops, enters FAILED and emits one `DtlsFailed(reason)`. No key material is exported
before the fingerprint has matched.

Retransmission and time. OpenSSL decides DTLS retransmissions with its own wall clock
(gettimeofday). pyOpenSSL exposes no clock hook and no DTLS_set_timer_cb, and the
cryptography wheel links OpenSSL statically without exporting its symbols, so `now` cannot
be handed to OpenSSL. (A timer callback would not help anyway: it only picks the next
interval, expiry is still judged against gettimeofday.) Replaying captured flights
ourselves would be wrong: OpenSSL retransmits with fresh record sequence numbers, which a
peer's replay window accepts, and it also answers a peer's retransmitted Finished. So this
transport leaves the schedule to OpenSSL and mirrors it: after every step the deadline is
`now + DTLSv1_get_timeout()`, and `handle_timer(now)` calls `DTLSv1_handle_timeout()`.
When OpenSSL's clock disagrees (ours ran ahead), nothing is sent and the deadline is
re-armed to what OpenSSL says remains. In production `now` is the event loop's monotonic
clock, which advances with the wall clock, so the two agree within OpenSSL's 15 ms slack.
Only the overall bound (`handshake_timeout` seconds of `now`, then "dtls handshake
timeout") is ours. Tests that need retransmissions run under libfaketime with OpenSSL's
clock pinned to the virtual `now`, so deadlines are exact and nobody waits.

Two OpenSSL details matter on memory BIOs: without SSL_OP_NO_QUERY_MTU the handshake
resets the MTU and falls back to 256 bytes (tiny fragments), and a memory BIO is a byte
stream that concatenates a whole flight, so outgoing bytes are cut back into datagrams at
record boundaries, each at most `mtu` bytes.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import struct
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

from cryptography import x509
from OpenSSL import SSL, crypto

from agent.rtc.certificate import Certificate, certificate_digest
from agent.rtc.fingerprint import SUPPORTED_FINGERPRINT_ALGORITHMS, digest_size

logger = logging.getLogger(__name__)

_DTLS1_2_VERSION = 0xFEFD  # pyOpenSSL has no constant for it
_SRTP_EXPORTER_LABEL = b"EXTRACTOR-dtls_srtp"
_RECORD_HEADER = struct.Struct("!B2sH6sH")  # type, version, epoch, sequence, length
_READ_SIZE = 65536  # larger than any record, so a record is never split between reads
DEFAULT_MTU = 1200
DEFAULT_HANDSHAKE_TIMEOUT = 30.0


class DtlsRole(Enum):
    """Which side of the handshake we play (SDP a=setup: active = CLIENT)."""

    CLIENT = "client"
    SERVER = "server"


class DtlsState(Enum):
    NEW = "new"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    FAILED = "failed"
    CLOSED = "closed"


class SrtpProfile(Enum):
    """DTLS-SRTP protection profiles we offer (RFC 5764, RFC 7714), by OpenSSL name."""

    AEAD_AES_128_GCM = "SRTP_AEAD_AES_128_GCM"
    AES128_CM_SHA1_80 = "SRTP_AES128_CM_SHA1_80"

    @property
    def key_length(self) -> int:
        return 16

    @property
    def salt_length(self) -> int:
        return 12 if self is SrtpProfile.AEAD_AES_128_GCM else 14

    @property
    def master_length(self) -> int:
        """Bytes of one side's master key + master salt."""
        return self.key_length + self.salt_length


DEFAULT_SRTP_PROFILES: tuple[SrtpProfile, ...] = (
    SrtpProfile.AEAD_AES_128_GCM,
    SrtpProfile.AES128_CM_SHA1_80,
)


@dataclass(frozen=True)
class SrtpKeys:
    """SRTP master keys derived from a DTLS handshake (key followed by salt)."""

    profile: SrtpProfile
    local_master: bytes = field(repr=False)  # key+salt we protect with
    remote_master: bytes = field(repr=False)  # key+salt we unprotect with


@dataclass(frozen=True)
class DtlsConnected:
    keys: SrtpKeys


@dataclass(frozen=True)
class DtlsFailed:
    reason: str


@dataclass(frozen=True)
class DtlsClosed:
    pass


@dataclass(frozen=True)
class DtlsApplicationData:
    data: bytes


DtlsEvent = DtlsConnected | DtlsFailed | DtlsClosed | DtlsApplicationData


def _accept_any_certificate(
    conn: SSL.Connection, cert: crypto.X509, errnum: int, depth: int, ok: int
) -> bool:
    # Self-signed certificates are the norm in WebRTC; the peer is authenticated by the
    # fingerprint check after the handshake instead.
    return True


def _describe(exc: SSL.Error) -> str:
    """OpenSSL's reason strings from a pyOpenSSL error, e.g. 'no shared cipher'."""
    parts: list[str] = []
    for arg in exc.args:
        items = arg if isinstance(arg, list) else [arg]
        for item in items:
            text = str(item[-1]) if isinstance(item, tuple) and item else str(item)
            if text and text not in parts:
                parts.append(text)
    return "; ".join(parts) or type(exc).__name__


def split_records(data: bytes, mtu: int) -> list[bytes]:
    """Cut concatenated DTLS records into datagrams of whole records, each <= `mtu` bytes.

    OpenSSL keeps every record within the MTU; a record that is not (or bytes that are not
    records) goes out as it is rather than being lost.
    """
    datagrams: list[bytes] = []
    start = pos = 0
    while pos < len(data):
        if len(data) - pos < _RECORD_HEADER.size:
            break
        length = _RECORD_HEADER.unpack_from(data, pos)[4]
        end = pos + _RECORD_HEADER.size + length
        if end > len(data):
            break
        if end - start > mtu and pos > start:
            datagrams.append(data[start:pos])
            start = pos
        pos = end
    if start < len(data):
        datagrams.append(data[start:])
    return datagrams


class DtlsTransport:
    """One DTLS-SRTP association, driven by datagrams and `now` (seconds, any epoch).

    Input: `start(now)`, `receive(data, now)`, `handle_timer(now)`, `send_application_data()`,
    `close()`. Output: `datagrams_to_send()`, `next_event()`, `get_timer()`.
    `remote_fingerprints` are the SDP `a=fingerprint` values as (algorithm, hex) pairs.
    """

    def __init__(
        self,
        certificate: Certificate,
        role: DtlsRole,
        remote_fingerprints: Sequence[tuple[str, str]],
        *,
        srtp_profiles: Sequence[SrtpProfile] = DEFAULT_SRTP_PROFILES,
        mtu: int = DEFAULT_MTU,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
    ) -> None:
        if not srtp_profiles:
            raise ValueError("at least one SRTP profile must be offered")
        self._role = role
        self._remote_fingerprints = [(alg.lower(), fp) for alg, fp in remote_fingerprints]
        self._srtp_profiles = tuple(srtp_profiles)
        self._mtu = mtu
        self._handshake_timeout = handshake_timeout

        ctx = SSL.Context(SSL.DTLS_METHOD)
        ctx.set_min_proto_version(_DTLS1_2_VERSION)
        ctx.set_max_proto_version(_DTLS1_2_VERSION)
        # Renegotiation could swap in a certificate the fingerprint check never saw.
        ctx.set_options(SSL.OP_NO_QUERY_MTU | SSL.OP_NO_TICKET | SSL.OP_NO_RENEGOTIATION)
        ctx.use_certificate(certificate.x509)
        ctx.use_privatekey(certificate.private_key)
        ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, _accept_any_certificate)
        ctx.set_tlsext_use_srtp(b":".join(p.value.encode() for p in self._srtp_profiles))
        self._conn = SSL.Connection(ctx, None)
        if role is DtlsRole.CLIENT:
            self._conn.set_connect_state()
        else:
            self._conn.set_accept_state()
        self._conn.set_ciphertext_mtu(mtu)

        self._state = DtlsState.NEW
        self._handshake_done = False
        self._srtp_keys: SrtpKeys | None = None
        self._retransmit_at: float | None = None
        self._give_up_at: float | None = None
        self._outgoing: list[bytes] = []
        self._events: deque[DtlsEvent] = deque()

    @property
    def state(self) -> DtlsState:
        return self._state

    @property
    def role(self) -> DtlsRole:
        return self._role

    @property
    def srtp_keys(self) -> SrtpKeys | None:
        """The SRTP keys once CONNECTED; None before, and forever after a failure."""
        return self._srtp_keys

    @property
    def application_data_mtu(self) -> int:
        """Largest `send_application_data()` payload that still fits one `mtu` datagram."""
        return self._conn.get_cleartext_mtu()

    # ----------------------------------------------------------------- input

    def start(self, now: float) -> None:
        """Begin the handshake: a client sends its ClientHello, a server starts waiting.

        Fails at once when no signalled fingerprint can ever be checked.
        """
        if self._state is not DtlsState.NEW:
            return
        self._set_state(DtlsState.CONNECTING)
        self._give_up_at = now + self._handshake_timeout
        problem = self._fingerprint_problem()
        if problem is not None:
            self._fail(problem)
            return
        self._handshake_step(now)

    def receive(self, data: bytes, now: float) -> None:
        """Feed one datagram from the peer (RFC 7983 first byte 20-63).

        Before `start()`, the first datagram starts the transport. Garbage is dropped by
        OpenSSL or ends in FAILED; it never raises.
        """
        if self._state is DtlsState.NEW:
            self.start(now)
        if self._state not in (DtlsState.CONNECTING, DtlsState.CONNECTED) or not data:
            return
        try:
            self._conn.bio_write(data)
        except SSL.Error as exc:
            self._fail(f"dtls error: {_describe(exc)}")
            return
        if self._state is DtlsState.CONNECTING:
            self._handshake_step(now)
        if self._state is DtlsState.CONNECTED:
            self._read_application_data()
        self._drain()

    def handle_timer(self, now: float) -> None:
        """Act on the deadline from `get_timer()`: retransmit a flight, or give up."""
        if self._state is not DtlsState.CONNECTING:
            return
        if self._give_up_at is not None and now >= self._give_up_at:
            self._fail("dtls handshake timeout")
            return
        if self._retransmit_at is None or now < self._retransmit_at:
            return
        try:
            retransmitted = self._conn.DTLSv1_handle_timeout()
        except SSL.Error as exc:
            self._fail(f"dtls handshake failed: {_describe(exc)}")
            return
        if retransmitted:
            logger.debug("dtls %s: retransmitted flight at %.3f", self._role.value, now)
        self._drain()
        self._arm_retransmit(now)

    def send_application_data(self, data: bytes) -> None:
        """Send one record of application data (SCTP) to the peer.

        Raises RuntimeError before CONNECTED; after CLOSED/FAILED the data is dropped, as
        the network would drop it.
        """
        if self._state is DtlsState.CONNECTED:
            try:
                self._conn.send(data)
            except SSL.Error as exc:
                self._fail(f"dtls error: {_describe(exc)}")
                return
            self._drain()
        elif self._state in (DtlsState.NEW, DtlsState.CONNECTING):
            raise RuntimeError("dtls transport is not connected yet")

    def close(self) -> None:
        """Send close_notify (when connected), enter CLOSED and emit `DtlsClosed`."""
        if self._state in (DtlsState.FAILED, DtlsState.CLOSED):
            return
        if self._state is DtlsState.CONNECTED:
            self._send_close_notify()
        self._stop_timers()
        self._set_state(DtlsState.CLOSED)
        self._events.append(DtlsClosed())

    # ---------------------------------------------------------------- output

    def datagrams_to_send(self) -> list[bytes]:
        """Datagrams to hand to the network, each at most `mtu` bytes."""
        datagrams, self._outgoing = self._outgoing, []
        return datagrams

    def next_event(self) -> DtlsEvent | None:
        """The oldest event not yet taken, or None."""
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        """When `handle_timer()` must be called next (same clock as `now`), or None."""
        if self._state is not DtlsState.CONNECTING:
            return None
        deadlines = [t for t in (self._retransmit_at, self._give_up_at) if t is not None]
        return min(deadlines) if deadlines else None

    # -------------------------------------------------------------- internals

    def _handshake_step(self, now: float) -> None:
        try:
            self._conn.do_handshake()
        except SSL.WantReadError:
            self._drain()
            self._arm_retransmit(now)
            return
        except SSL.ZeroReturnError:
            self._drain()
            self._closed_by_peer()
            return
        except SSL.Error as exc:
            self._drain()  # the alert OpenSSL wrote tells the peer why
            self._fail(f"dtls handshake failed: {_describe(exc)}")
            return
        self._handshake_done = True
        self._drain()
        self._complete_handshake()

    def _complete_handshake(self) -> None:
        cert = self._conn.get_peer_certificate(as_cryptography=True)
        if cert is None:
            self._fail("dtls peer sent no certificate")
            return
        if not self._fingerprint_matches(cert):
            self._fail("dtls fingerprint mismatch")
            return
        name = self._conn.get_selected_srtp_profile().decode("ascii", "replace")
        profile = next((p for p in self._srtp_profiles if p.value == name), None)
        if profile is None:
            self._fail("dtls no srtp profile negotiated")
            return
        material = self._conn.export_keying_material(
            _SRTP_EXPORTER_LABEL, 2 * profile.master_length
        )
        # RFC 5764 4.2: client_key | server_key | client_salt | server_salt.
        k, s = profile.key_length, profile.salt_length
        client = material[:k] + material[2 * k : 2 * k + s]
        server = material[k : 2 * k] + material[2 * k + s : 2 * k + 2 * s]
        if self._role is DtlsRole.CLIENT:
            keys = SrtpKeys(profile, local_master=client, remote_master=server)
        else:
            keys = SrtpKeys(profile, local_master=server, remote_master=client)
        self._srtp_keys = keys
        self._stop_timers()
        self._set_state(DtlsState.CONNECTED)
        self._events.append(DtlsConnected(keys))

    def _fingerprint_problem(self) -> str | None:
        algorithms = [alg for alg, _ in self._remote_fingerprints]
        if not SUPPORTED_FINGERPRINT_ALGORITHMS.intersection(algorithms):
            offered = ", ".join(algorithms) or "none"
            return f"dtls no supported fingerprint algorithm (offered: {offered})"
        for alg, text in self._remote_fingerprints:
            if alg in SUPPORTED_FINGERPRINT_ALGORITHMS and _parse_hex(text, alg) is None:
                return f"dtls malformed {alg} fingerprint"
        return None

    def _fingerprint_matches(self, cert: x509.Certificate) -> bool:
        """RFC 8122 section 5: the certificate must match one of the fingerprints. Only
        those of the strongest hash offered count, so a weaker hash listed beside a
        stronger one can't be the one an attacker's certificate is made to match."""
        supported = [
            (alg, text)
            for alg, text in self._remote_fingerprints
            if alg in SUPPORTED_FINGERPRINT_ALGORITHMS
        ]
        if not supported:
            return False
        strongest = max((alg for alg, _ in supported), key=digest_size)
        actual = certificate_digest(cert, strongest)
        matched = False
        for alg, text in supported:
            if alg != strongest:
                continue
            expected = _parse_hex(text, alg)
            # Compare with every one, not stopping at the first match (constant time).
            matched |= expected is not None and hmac.compare_digest(actual, expected)
        return matched

    def _read_application_data(self) -> None:
        while self._state is DtlsState.CONNECTED:
            try:
                data = self._conn.recv(_READ_SIZE)
            except SSL.WantReadError:
                return
            except SSL.ZeroReturnError:
                self._closed_by_peer()
                return
            except SSL.Error as exc:
                self._fail(f"dtls error: {_describe(exc)}")
                return
            self._events.append(DtlsApplicationData(data))

    def _closed_by_peer(self) -> None:
        self._stop_timers()
        self._set_state(DtlsState.CLOSED)
        self._events.append(DtlsClosed())

    def _fail(self, reason: str) -> None:
        """The one way into FAILED: stop, forget any keys, tell the owner why."""
        if self._state in (DtlsState.FAILED, DtlsState.CLOSED):
            return
        if self._handshake_done:
            # The peer may believe the handshake succeeded (our Finished is on its way):
            # an authenticated close_notify lets it stop at once instead of timing out.
            self._send_close_notify()
        self._srtp_keys = None
        self._stop_timers()
        self._set_state(DtlsState.FAILED)
        logger.warning("dtls %s failed: %s", self._role.value, reason)
        self._events.append(DtlsFailed(reason))

    def _send_close_notify(self) -> None:
        # A broken association has nothing more to tell the peer.
        with contextlib.suppress(SSL.Error):
            self._conn.shutdown()
        self._drain()

    def _arm_retransmit(self, now: float) -> None:
        remaining = self._conn.DTLSv1_get_timeout()
        self._retransmit_at = None if remaining is None else now + remaining

    def _stop_timers(self) -> None:
        self._retransmit_at = None
        self._give_up_at = None

    def _drain(self) -> None:
        chunks: list[bytes] = []
        while True:
            try:
                chunks.append(self._conn.bio_read(_READ_SIZE))
            except (SSL.WantReadError, SSL.Error):
                break
        if chunks:
            self._outgoing.extend(split_records(b"".join(chunks), self._mtu))

    def _set_state(self, state: DtlsState) -> None:
        logger.info("dtls %s: %s -> %s", self._role.value, self._state.value, state.value)
        self._state = state


def _parse_hex(text: str, algorithm: str) -> bytes | None:
    try:
        value = bytes.fromhex(text.replace(":", ""))
    except ValueError:
        return None
    return value if len(value) == digest_size(algorithm) else None
