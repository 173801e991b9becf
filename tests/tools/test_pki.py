"""`edgecam ca`: the certificates verify against the CA, keys are private, names and usages
are what each kind needs, and nothing is overwritten."""

from __future__ import annotations

import datetime
import ipaddress
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from agent.tools import pki
from agent.tools.cli import main


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _openssl_verify(ca: Path, cert: Path, purpose: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", "verify", "-purpose", purpose, "-CAfile", str(ca), str(cert)],
        capture_output=True,
        text=True,
        check=False,
    )


def _eku(cert: x509.Certificate) -> list[x509.ObjectIdentifier]:
    return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def test_device_and_client_certs_verify_as_clients_with_cn_and_client_auth(
    tmp_path: Path,
) -> None:
    ca = pki.init_ca(tmp_path / "pki", days=30)
    assert _mode(ca.key_path) == 0o600
    for kind, name in (("device", "cam-01"), ("client", "ops-alice")):
        issued = pki.issue(ca, kind, name, out_dir=tmp_path / "pki", days=10)  # type: ignore[arg-type]
        assert _mode(issued.key_path) == 0o600
        cert = _cert(issued.cert_path)
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == name
        assert _eku(cert) == [ExtendedKeyUsageOID.CLIENT_AUTH]
        # OpenSSL (what mosquitto uses) with the TLS-client purpose: chain and usages.
        assert _openssl_verify(ca.cert_path, issued.cert_path, "sslclient").returncode == 0
        assert _openssl_verify(ca.cert_path, issued.cert_path, "sslserver").returncode != 0
        assert issued.not_after == cert.not_valid_after_utc
        assert 9 <= (issued.not_after - cert.not_valid_before_utc).days <= 10


def test_broker_cert_verifies_for_each_san_and_not_for_another_name(tmp_path: Path) -> None:
    ca = pki.init_ca(tmp_path)
    issued = pki.issue(
        ca, "broker", "mqtt.example", out_dir=tmp_path, sans=["mqtt.example", "10.0.0.5"]
    )
    cert = _cert(issued.cert_path)
    assert _eku(cert) == [ExtendedKeyUsageOID.SERVER_AUTH]
    builder = PolicyBuilder().store(Store([ca.cert]))
    builder.build_server_verifier(x509.DNSName("mqtt.example")).verify(cert, [])
    builder.build_server_verifier(x509.IPAddress(ipaddress.ip_address("10.0.0.5"))).verify(cert, [])
    with pytest.raises(VerificationError):
        builder.build_server_verifier(x509.DNSName("other.example")).verify(cert, [])


def test_a_cert_from_another_ca_does_not_verify(tmp_path: Path) -> None:
    ours = pki.init_ca(tmp_path / "a")
    theirs = pki.init_ca(tmp_path / "b")
    issued = pki.issue(theirs, "device", "cam-01", out_dir=tmp_path / "b")
    assert _openssl_verify(theirs.cert_path, issued.cert_path, "sslclient").returncode == 0
    assert _openssl_verify(ours.cert_path, issued.cert_path, "sslclient").returncode != 0


def test_nothing_is_overwritten_and_bad_names_are_refused(tmp_path: Path) -> None:
    ca = pki.init_ca(tmp_path)
    with pytest.raises(pki.PkiError, match="refusing to overwrite a CA"):
        pki.init_ca(tmp_path)
    pki.issue(ca, "device", "cam-01", out_dir=tmp_path)
    with pytest.raises(pki.PkiError, match="refusing to overwrite"):
        pki.issue(ca, "device", "cam-01", out_dir=tmp_path)
    with pytest.raises(pki.PkiError, match="A-Z a-z"):
        pki.issue(ca, "device", "cam 01", out_dir=tmp_path)
    with pytest.raises(pki.PkiError, match="viewer-"):
        pki.issue(ca, "device", "viewer-1", out_dir=tmp_path)
    with pytest.raises(pki.PkiError, match="broker certificates only"):
        pki.issue(ca, "device", "cam-02", out_dir=tmp_path, sans=["x"])


def test_cli_issues_from_an_existing_ca_and_prints_files_and_expiry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca_dir, out = tmp_path / "theirs", tmp_path / "out"
    assert main(["ca", "init", "--dir", str(ca_dir), "--name", "Their CA"]) == 0
    capsys.readouterr()
    argv = ["ca", "issue", "device", "cam-07", "--dir", str(out), "--days", "5"]
    argv += ["--ca-cert", str(ca_dir / "ca.pem"), "--ca-key", str(ca_dir / "ca.key")]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    cert = _cert(out / "device" / "cam-07.pem")
    assert str(out / "device" / "cam-07.pem") in printed
    assert f"{cert.not_valid_after_utc:%Y-%m-%d}" in printed
    assert cert.issuer.rfc4514_string() == "CN=Their CA"


def test_an_operators_rsa_ca_signs_a_device_cert_that_openssl_accepts(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Corp Root")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "corp.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "corp.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ca = pki.load_ca(tmp_path / "corp.pem", tmp_path / "corp.key")
    issued = pki.issue(ca, "device", "cam-09", out_dir=tmp_path, days=90)
    assert issued.not_after <= cert.not_valid_after_utc  # never outlives its CA
    assert _openssl_verify(tmp_path / "corp.pem", issued.cert_path, "sslclient").returncode == 0
    with pytest.raises(pki.PkiError, match="is not the key of"):
        pki.load_ca(tmp_path / "corp.pem", pki.init_ca(tmp_path / "other").key_path)


@pytest.mark.parametrize(
    "argv",
    [
        ["ca", "init", "--days", "0"],
        ["ca", "issue", "device", "cam 1"],
        ["ca", "issue", "device", "cam-1", "--ca-cert", "x.pem"],
        ["ca", "issue", "gadget", "x"],
    ],
)
def test_cli_errors_are_one_line_and_exit_2(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pki.init_ca(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--dir", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "error:" in err
