"""agent/rtc/certificate.py: the DTLS certificate, its fingerprints and its file."""

from __future__ import annotations

import datetime
import hashlib
import os
import re
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.config.store import write_atomically
from agent.rtc.certificate import RENEW_BEFORE, Certificate

NOW = datetime.datetime(2030, 6, 1, 12, 0, tzinfo=datetime.UTC)

HASHLIB_NAMES = {
    "sha-1": "sha1",
    "sha-224": "sha224",
    "sha-256": "sha256",
    "sha-384": "sha384",
    "sha-512": "sha512",
}



def load_or_create(path: Path, now: datetime.datetime | None = None) -> Certificate:
    return Certificate.load_or_create(path, write=write_atomically, now=now)

def test_generate_makes_self_signed_p256_certificate_around_now() -> None:
    cert = Certificate.generate(now=NOW)
    assert isinstance(cert.private_key.curve, ec.SECP256R1)
    assert cert.x509.public_key() == cert.private_key.public_key()
    cert.x509.verify_directly_issued_by(cert.x509)  # raises if the signature is wrong
    assert cert.x509.not_valid_before_utc == NOW - datetime.timedelta(days=30)
    assert cert.x509.not_valid_after_utc == NOW + datetime.timedelta(days=365)


def test_generate_uses_random_names_and_keys() -> None:
    a, b = Certificate.generate(), Certificate.generate()
    cn_a = a.x509.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    cn_b = b.x509.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn_a != cn_b
    assert a.fingerprint() != b.fingerprint()


@pytest.mark.parametrize("algorithm", sorted(HASHLIB_NAMES))
def test_fingerprint_is_uppercase_colon_hex_of_der_digest(algorithm: str) -> None:
    cert = Certificate.generate()
    der = cert.x509.public_bytes(serialization.Encoding.DER)
    digest = hashlib.new(HASHLIB_NAMES[algorithm], der).digest()
    text = cert.fingerprint(algorithm)
    assert re.fullmatch(r"[0-9A-F]{2}(:[0-9A-F]{2})*", text)
    assert bytes.fromhex(text.replace(":", "")) == digest


def test_fingerprint_defaults_to_sha256_and_ignores_case_of_name() -> None:
    cert = Certificate.generate()
    assert cert.fingerprint() == cert.fingerprint("SHA-256") == cert.fingerprint("sha-256")


def test_fingerprint_rejects_unsupported_algorithm() -> None:
    with pytest.raises(ValueError, match="md5"):
        Certificate.generate().fingerprint("md5")


def test_load_or_create_creates_private_file_then_loads_same_certificate(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state" / "dtls.pem"
    created = load_or_create(path, now=NOW)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert os.listdir(path.parent) == ["dtls.pem"]  # no temporary file left behind
    loaded = load_or_create(path, now=NOW)
    assert loaded.fingerprint() == created.fingerprint()
    assert loaded.private_key.private_numbers() == created.private_key.private_numbers()


def test_file_holds_pem_key_then_certificate(tmp_path: Path) -> None:
    path = tmp_path / "dtls.pem"
    cert = load_or_create(path)
    data = path.read_bytes()
    assert data.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert b"-----BEGIN CERTIFICATE-----" in data
    assert x509.load_pem_x509_certificate(data) == cert.x509


def test_corrupt_file_is_a_value_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "dtls.pem"
    path.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot base64 at all\n")
    with pytest.raises(ValueError, match=re.escape(str(path))):
        load_or_create(path)
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\nnot")  # left alone


def test_key_and_certificate_that_do_not_belong_together_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "dtls.pem"
    a, b = Certificate.generate(), Certificate.generate()
    key_pem = a.to_pem().split(b"-----BEGIN CERTIFICATE-----")[0]
    path.write_bytes(key_pem + b.x509.public_bytes(serialization.Encoding.PEM))
    with pytest.raises(ValueError, match="does not belong"):
        load_or_create(path)


def test_unreadable_file_is_a_value_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "dtls.pem"
    path.mkdir()  # reading a directory fails even for root
    with pytest.raises(ValueError, match=f"cannot read DTLS certificate {re.escape(str(path))}"):
        load_or_create(path)


def test_expired_certificate_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "dtls.pem"
    old = load_or_create(path, now=NOW)
    later = NOW + datetime.timedelta(days=400)
    new = load_or_create(path, now=later)
    assert new.fingerprint() != old.fingerprint()
    assert new.x509.not_valid_after_utc == later + datetime.timedelta(days=365)
    assert load_or_create(path, now=later).fingerprint() == new.fingerprint()


def test_certificate_about_to_expire_is_renewed_but_not_before(tmp_path: Path) -> None:
    path = tmp_path / "dtls.pem"
    old = load_or_create(path, now=NOW)
    expiry = old.x509.not_valid_after_utc
    kept = load_or_create(path, now=expiry - RENEW_BEFORE - datetime.timedelta(1))
    assert kept.fingerprint() == old.fingerprint()
    renewed = load_or_create(path, now=expiry - RENEW_BEFORE)
    assert renewed.fingerprint() != old.fingerprint()


def test_certificate_from_the_future_is_kept(tmp_path: Path) -> None:
    # A clock that is behind (no RTC at boot) is no reason to throw the key away.
    path = tmp_path / "dtls.pem"
    old = load_or_create(path, now=NOW)
    earlier = NOW - datetime.timedelta(days=3650)
    assert load_or_create(path, now=earlier).fingerprint() == old.fingerprint()


def test_failed_write_keeps_old_file_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "dtls.pem"
    load_or_create(path, now=NOW)
    before = path.read_bytes()

    def failing_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(ValueError, match=f"cannot write DTLS certificate {re.escape(str(path))}"):
        load_or_create(path, now=NOW + datetime.timedelta(days=400))
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["dtls.pem"]


def test_non_p256_key_is_rejected() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    other = Certificate.generate()
    with pytest.raises(ValueError, match="P-256"):
        Certificate(key, other.x509)
