"""The DTLS certificate: an ECDSA P-256 key with a self-signed X.509 certificate.

WebRTC authenticates DTLS peers by the certificate digest signalled in SDP
(`a=fingerprint`), never by a CA chain, so the certificate only has to be well-formed,
signed by its own key and inside its validity period. Its common name is random so that
it does not tell anyone which software or device answered.

Persistence (`load_or_create`): key and certificate live in one PEM file, mode 0600,
replaced atomically by the caller's writer (agent.config.store.write_atomically) so that a
power cut leaves either the old or the new file, never half of one. A file that exists but
cannot be read or parsed is an error naming the path: silently replacing it could hide a
wrong path or a disk problem. A certificate that has expired, or
expires within `RENEW_BEFORE`, is replaced by a new one; one that is "not yet valid" is
kept, because that only means the clock is behind (a Raspberry Pi without an RTC boots
with an old clock) and peers do not check validity anyway.
"""

from __future__ import annotations

import datetime
import logging
import secrets
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

# The hash table lives in fingerprint.py; these names stay importable from here too.
from agent.rtc.fingerprint import (
    SUPPORTED_FINGERPRINT_ALGORITHMS as SUPPORTED_FINGERPRINT_ALGORITHMS,
)
from agent.rtc.fingerprint import digest_size as digest_size
from agent.rtc.fingerprint import format_fingerprint, hash_for

logger = logging.getLogger(__name__)

FileWriter = Callable[[Path, bytes, int], None]

# Back-dating tolerates peers whose clocks run behind ours.
VALID_BEFORE_NOW = datetime.timedelta(days=30)
LIFETIME = datetime.timedelta(days=365)
RENEW_BEFORE = datetime.timedelta(days=7)


def certificate_digest(cert: x509.Certificate, algorithm: str) -> bytes:
    """Digest of the DER encoding of `cert`, as `a=fingerprint` signals it (raw bytes)."""
    return cert.fingerprint(hash_for(algorithm))


class Certificate:
    """An ECDSA P-256 private key and the self-signed certificate that goes with it."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
        if not isinstance(key.curve, ec.SECP256R1):
            raise ValueError(f"DTLS key must be on P-256, not {key.curve.name}")
        if cert.public_key() != key.public_key():
            raise ValueError("DTLS certificate does not belong to the private key")
        self._key = key
        self._cert = cert

    @property
    def private_key(self) -> ec.EllipticCurvePrivateKey:
        return self._key

    @property
    def x509(self) -> x509.Certificate:
        return self._cert

    @classmethod
    def generate(cls, *, now: datetime.datetime | None = None) -> Certificate:
        """A fresh key and certificate valid from `now - 30 days` to `now + 365 days`.

        `now` is the wall-clock time (timezone-aware); default: the current time.
        """
        if now is None:
            now = datetime.datetime.now(datetime.UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, secrets.token_hex(8))])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - VALID_BEFORE_NOW)
            .not_valid_after(now + LIFETIME)
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    @classmethod
    def load_or_create(
        cls, path: Path, *, write: FileWriter, now: datetime.datetime | None = None
    ) -> Certificate:
        """Load the PEM key+certificate at `path`, creating or renewing it when needed.

        Missing file: a new certificate is written (parent directories created, mode 0700).
        Expired or expiring within `RENEW_BEFORE` of `now`: replaced by a new one.
        Unreadable or corrupt: ValueError naming `path` (delete the file to start over).
        `write(path, data, mode)` replaces a file atomically (the caller's file store: this
        core does no I/O policy of its own).
        """
        if now is None:
            now = datetime.datetime.now(datetime.UTC)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            certificate = cls.generate(now=now)
            certificate._write(path, write)
            logger.info("created DTLS certificate %s", path)
            return certificate
        except OSError as exc:
            raise ValueError(f"cannot read DTLS certificate {path}: {exc.strerror}") from exc

        certificate = cls.from_pem(data, source=str(path))
        if now >= certificate.x509.not_valid_after_utc - RENEW_BEFORE:
            certificate = cls.generate(now=now)
            certificate._write(path, write)
            logger.info("renewed expiring DTLS certificate %s", path)
        return certificate

    def _write(self, path: Path, write: FileWriter) -> None:
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            write(path, self.to_pem(), 0o600)  # the key is never readable by others
        except OSError as exc:
            raise ValueError(f"cannot write DTLS certificate {path}: {exc.strerror}") from exc

    @classmethod
    def from_pem(cls, data: bytes, *, source: str = "<memory>") -> Certificate:
        """Parse an unencrypted PEM private key followed by its certificate."""
        try:
            key = serialization.load_pem_private_key(data, password=None)
            cert = x509.load_pem_x509_certificate(data)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise ValueError(
                f"corrupt DTLS certificate file {source}: {exc} (delete it to create a new one)"
            ) from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"corrupt DTLS certificate file {source}: key is not ECDSA")
        try:
            return cls(key, cert)
        except ValueError as exc:
            raise ValueError(f"corrupt DTLS certificate file {source}: {exc}") from exc

    def to_pem(self) -> bytes:
        """The private key (PKCS#8, unencrypted) followed by the certificate, as PEM."""
        key_pem = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return key_pem + self._cert.public_bytes(serialization.Encoding.PEM)

    def fingerprint(self, algorithm: str = "sha-256") -> str:
        """The certificate digest as SDP `a=fingerprint` writes it: `AB:CD:...`."""
        return format_fingerprint(certificate_digest(self._cert, algorithm))

    def __repr__(self) -> str:
        return f"Certificate(sha-256={self.fingerprint()})"
