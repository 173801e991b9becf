"""A throwaway certificate authority for tests: a CA plus server and client leaf certificates.

Keys are ECDSA P-256 (fast to make: the whole PKI costs milliseconds). Key files are mode 0600
and owned by the test user: the test servers run as that user (the mosquitto config says
`user root`, coturn is not told to drop privileges), which avoids depending on the `mosquitto`
group being able to traverse pytest's 0700 tmp directories.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


class Pki:
    """A test CA in `directory`; `issue()` makes leaf certificates signed by it.

    `ca_path` is the CA certificate (PEM) that clients and servers trust.
    """

    def __init__(self, directory: Path, *, ca_name: str = "edgecam test CA") -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._now = datetime.datetime.now(datetime.UTC)
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca_name)])
        self.ca_cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._now - datetime.timedelta(hours=1))
            .not_valid_after(self._now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.ca_key.public_key()),
                critical=False,
            )
            .sign(self.ca_key, hashes.SHA256())
        )
        self.ca_path = self.directory / "ca.pem"
        self.ca_path.write_bytes(self.ca_cert.public_bytes(serialization.Encoding.PEM))
        _write_key(self.directory / "ca.key", self.ca_key)

    def issue(
        self,
        cn: str,
        *,
        server_names: Sequence[str] = ("localhost", "127.0.0.1"),
        client: bool = False,
    ) -> tuple[Path, Path]:
        """Issue a leaf for `cn`; returns (cert_path, key_path).

        `server_names` become subjectAltNames (IP literals as IP entries) and the serverAuth
        usage; `client=True` adds clientAuth (the CN is what mosquitto takes as username).
        """
        if not server_names and not client:
            raise ValueError("a certificate needs server_names or client=True")
        key = ec.generate_private_key(ec.SECP256R1())
        usages = []
        if server_names:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        if client:
            usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(self.ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._now - datetime.timedelta(hours=1))
            .not_valid_after(self._now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_key.public_key()),
                critical=False,
            )
        )
        if server_names:
            alt_names: list[x509.GeneralName] = []
            for name in server_names:
                try:
                    alt_names.append(x509.IPAddress(ipaddress.ip_address(name)))
                except ValueError:
                    alt_names.append(x509.DNSName(name))
            builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        cert = builder.sign(self.ca_key, hashes.SHA256())
        stem = _SAFE_NAME.sub("_", cn)
        cert_path = self.directory / f"{stem}.pem"
        key_path = self.directory / f"{stem}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key_path, key)
        return cert_path, key_path


@pytest.fixture
def pki(tmp_path: Path) -> Iterator[Pki]:
    """A fresh test CA in the test's tmp directory."""
    yield Pki(tmp_path / "pki")
