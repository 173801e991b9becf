"""A certificate authority for operators without one: `edgecam ca init` and `edgecam ca issue`.

Layout of a CA directory (what `edgecam broker-config --ca-dir` reads back):
    ca.pem, ca.key                  the CA (EC P-256, self-signed)
    device/<id>.pem, .key           device certificates: CN = device id, clientAuth
    client/<name>.pem, .key         fleet tools (`edgecam ctl`): CN = client id, clientAuth
    broker/<name>.pem, .key         the broker: subjectAltNames, serverAuth
Private keys are written 0600 through write_atomically, so a power cut never leaves half a key.
"""

from __future__ import annotations

import datetime
import fnmatch
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent.config.store import write_atomically

Kind = Literal["device", "client", "broker"]
CaKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
KINDS: Final[tuple[Kind, ...]] = ("device", "client", "broker")
CA_CERT: Final = "ca.pem"
CA_KEY: Final = "ca.key"
DEFAULT_CA_DAYS: Final = 3650
DEFAULT_LEAF_DAYS: Final = 825
# What config.device.id accepts (agent/config/load.py); client ids become MQTT usernames and
# file names, so they follow the same rule.
_NAME: Final = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# config/edgecam.example.toml's [access] patterns: a device whose id matched one would also
# get that role when its own client id (= CN) calls another device.
CLIENT_PATTERNS: Final = ("viewer-*", "ops-*", "admin-*")


class PkiError(Exception):
    """A request the CA refuses (bad name, existing CA, unreadable files): one line for the user."""


@dataclass(frozen=True)
class Ca:
    """A loaded CA: its certificate, its key, and the paths they came from."""

    cert: x509.Certificate
    key: CaKey
    cert_path: Path
    key_path: Path


@dataclass(frozen=True)
class Issued:
    """What `issue` wrote: the certificate, its key, and when it expires."""

    cert_path: Path
    key_path: Path
    not_after: datetime.datetime


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=not ca,  # ECDHE-ECDSA leaves only sign; some stacks still look for it
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def init_ca(directory: Path, *, days: int = DEFAULT_CA_DAYS, name: str = "edgecam CA") -> Ca:
    """Create a CA in `directory` (made 0700 if missing); refuses to replace an existing one,
    since every certificate it signed would stop verifying."""
    cert_path, key_path = directory / CA_CERT, directory / CA_KEY
    for path in (cert_path, key_path):
        if path.exists():
            raise PkiError(f"{path} exists: refusing to overwrite a CA (remove it by hand)")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    now = _now()
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))  # devices whose clock lags a bit
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    write_atomically(key_path, _key_pem(key), mode=0o600)
    write_atomically(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return Ca(cert, key, cert_path, key_path)


def load_ca(cert_path: Path, key_path: Path) -> Ca:
    """Load an existing CA (ours or the operator's own: EC or RSA key, unencrypted PEM)."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except OSError as exc:
        raise PkiError(f"{exc.filename}: {exc.strerror}") from None
    except (ValueError, TypeError) as exc:
        raise PkiError(f"{cert_path} / {key_path}: not an unencrypted PEM CA: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise PkiError(f"{key_path}: only EC and RSA CA keys are supported")
    if key.public_key() != cert.public_key():
        raise PkiError(f"{key_path} is not the key of {cert_path}")
    return Ca(cert, key, cert_path, key_path)


def check_name(kind: Kind, name: str) -> None:
    """Refuse names that would not work as device id / MQTT username, or that collide with the
    client-id patterns of [access]."""
    if kind == "broker":
        if not name or "/" in name or name.startswith("."):
            raise PkiError(f"broker name {name!r}: give a host name")
        return
    if not _NAME.fullmatch(name):
        raise PkiError(f"{kind} name {name!r}: 1 to 64 characters of A-Z a-z 0-9 _ - .")
    if kind == "device":
        for pattern in CLIENT_PATTERNS:
            if fnmatch.fnmatchcase(name, pattern):
                raise PkiError(
                    f"device id {name!r} matches the client pattern {pattern!r} of [access]: "
                    "it would get that role on every other device"
                )


def _alt_names(sans: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for san in sans:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(san)))
        except ValueError:
            names.append(x509.DNSName(san))
    return names


def issue(
    ca: Ca,
    kind: Kind,
    name: str,
    *,
    out_dir: Path,
    days: int = DEFAULT_LEAF_DAYS,
    sans: Sequence[str] = (),
) -> Issued:
    """Issue a `kind` certificate for `name` into out_dir/<kind>/<name>.pem|.key.

    device/client: CN = name, clientAuth (mosquitto takes the CN as username and client id).
    broker: CN = name, subjectAltNames `sans` (default: just `name`), serverAuth.
    Never overwrites: an existing certificate may be in use on a device."""
    cert_path, key_path = _leaf_paths(out_dir, kind, name)
    if key_path.exists():
        raise PkiError(f"{key_path} exists: refusing to overwrite it")
    cert, key = make_leaf(ca, kind, name, days=days, sans=sans)
    write_atomically(key_path, key, mode=0o600)
    write_atomically(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return Issued(cert_path, key_path, cert.not_valid_after_utc)


def issue_without_key(
    ca: Ca, name: str, *, out_dir: Path, days: int = DEFAULT_LEAF_DAYS
) -> tuple[x509.Certificate, bytes]:
    """A device certificate recorded in out_dir/device/<name>.pem whose key (PEM, returned)
    is not kept there: for `edgecam provision`, which puts it only on the device's card."""
    cert_path, key_path = _leaf_paths(out_dir, "device", name)
    if key_path.exists():
        raise PkiError(f"{key_path} exists: refusing to overwrite it")
    cert, key = make_leaf(ca, "device", name, days=days)
    write_atomically(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return cert, key


def _leaf_paths(out_dir: Path, kind: Kind, name: str) -> tuple[Path, Path]:
    """Where a leaf lives in the CA directory; refuses one that exists (it may be in use)."""
    check_name(kind, name)
    directory = out_dir / kind
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    if cert_path.exists():
        raise PkiError(f"{cert_path} exists: refusing to overwrite it")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    return cert_path, key_path


def make_leaf(
    ca: Ca, kind: Kind, name: str, *, days: int = DEFAULT_LEAF_DAYS, sans: Sequence[str] = ()
) -> tuple[x509.Certificate, bytes]:
    """A new key (PEM, PKCS#8) and its certificate signed by `ca`, written nowhere."""
    check_name(kind, name)
    if kind != "broker" and sans:
        raise PkiError("--san is for broker certificates only")
    now = _now()
    not_after = min(now + datetime.timedelta(days=days), ca.cert.not_valid_after_utc)
    key = ec.generate_private_key(ec.SECP256R1())
    usage = ExtendedKeyUsageOID.SERVER_AUTH if kind == "broker" else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
    )
    if kind == "broker":
        alt = x509.SubjectAlternativeName(_alt_names(sans or [name]))
        builder = builder.add_extension(alt, critical=False)
    return builder.sign(ca.key, hashes.SHA256()), _key_pem(key)
