"""agent/config_check.py: `edgecam check` opens every file the config names."""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.config import load_config
from agent.config.check import check_files, run_check

DAY = datetime.timedelta(days=1)


def make_cert(
    directory: Path,
    cn: str = "cam-01",
    not_before: datetime.timedelta = -DAY,
    not_after: datetime.timedelta = 365 * DAY,
    name: str = "device",
) -> tuple[Path, Path]:
    """A self-signed certificate and its key, as a device would hold them."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + not_before)
        .not_valid_after(now + not_after)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def config_file(tmp_path: Path, mqtt: str = "", camera: str = 'source = "testsrc"') -> Path:
    path = tmp_path / "edgecam.toml"
    path.write_text(
        f'[device]\nid = "cam-01"\nstate_dir = "{tmp_path}/state"\n\n'
        f'[mqtt]\nurl = "mqtts://b"\n{mqtt}\n\n[camera]\n{camera}\n'
    )
    path.chmod(0o600)
    return path


@pytest.fixture
def tls(tmp_path: Path) -> str:
    ca, _ = make_cert(tmp_path, cn="edgecam test CA", name="ca")
    cert, key = make_cert(tmp_path)
    return f'ca = "{ca}"\ncert = "{cert}"\nkey = "{key}"'


def test_good_files_pass(tmp_path: Path, tls: str) -> None:
    assert check_files(load_config(config_file(tmp_path, tls))) == []


def test_missing_files_are_errors_naming_key_and_path(tmp_path: Path) -> None:
    mqtt = f'ca = "{tmp_path}/ca.pem"\ncert = "{tmp_path}/d.pem"\nkey = "{tmp_path}/d.key"'
    assert check_files(load_config(config_file(tmp_path, mqtt))) == [
        f"error: mqtt.ca: {tmp_path}/ca.pem: No such file or directory",
        f"error: mqtt.cert: {tmp_path}/d.pem: No such file or directory",
        f"error: mqtt.key: {tmp_path}/d.key: No such file or directory",
    ]


def test_files_that_are_not_pem(tmp_path: Path, tls: str) -> None:
    (tmp_path / "device.pem").write_text("not a certificate")
    (tmp_path / "device.key").write_text("not a key")
    assert check_files(load_config(config_file(tmp_path, tls))) == [
        f"error: mqtt.cert: {tmp_path}/device.pem: not a PEM certificate",
        f"error: mqtt.key: {tmp_path}/device.key: not a PEM private key",
    ]


def test_encrypted_key_is_an_error(tmp_path: Path, tls: str) -> None:
    key = serialization.load_pem_private_key((tmp_path / "device.key").read_bytes(), None)
    (tmp_path / "device.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pw"),
        )
    )
    assert check_files(load_config(config_file(tmp_path, tls))) == [
        f"error: mqtt.key: {tmp_path}/device.key: encrypted; edgecam needs an unencrypted key"
    ]


@pytest.mark.parametrize(
    ("not_before", "not_after", "expected"),
    [
        (-30 * DAY, -DAY, "error: mqtt.cert: {path}: certificate CN=cam-01 expired on "),
        (DAY, 30 * DAY, "error: mqtt.cert: {path}: certificate CN=cam-01 is not valid before "),
        (-DAY, 3 * DAY, "warning: mqtt.cert: {path}: certificate CN=cam-01 expires on "),
    ],
)
def test_certificate_validity(
    tmp_path: Path,
    tls: str,
    not_before: datetime.timedelta,
    not_after: datetime.timedelta,
    expected: str,
) -> None:
    make_cert(tmp_path, not_before=not_before, not_after=not_after)
    [problem] = check_files(load_config(config_file(tmp_path, tls)))
    assert problem.startswith(expected.format(path=tmp_path / "device.pem")), problem


def test_expired_ca_bundle_is_an_error(tmp_path: Path, tls: str) -> None:
    make_cert(tmp_path, cn="old CA", not_before=-30 * DAY, not_after=-DAY, name="ca")
    assert check_files(load_config(config_file(tmp_path, tls))) == [
        f"error: mqtt.ca: {tmp_path}/ca.pem: every certificate in it has expired"
    ]


def test_cn_other_than_device_id_warns(tmp_path: Path, tls: str) -> None:
    make_cert(tmp_path, cn="cam-02")
    [problem] = check_files(load_config(config_file(tmp_path, tls)))
    assert problem.startswith("warning: device.id: 'cam-01' is not the CN of ")
    assert "('cam-02')" in problem


def test_key_of_another_certificate_is_an_error(tmp_path: Path, tls: str) -> None:
    other = tmp_path / "other"
    other.mkdir()
    _, key = make_cert(other)
    (tmp_path / "device.key").write_bytes(key.read_bytes())
    assert check_files(load_config(config_file(tmp_path, tls))) == [
        f"error: mqtt.key: {tmp_path}/device.key is not the key of {tmp_path}/device.pem"
    ]


def test_world_readable_key_warns(tmp_path: Path, tls: str) -> None:
    (tmp_path / "device.key").chmod(0o644)
    path = tmp_path / "device.key"
    assert check_files(load_config(config_file(tmp_path, tls))) == [
        f"warning: mqtt.key: {path}: readable by every user; chmod o-r {path}"
    ]


def test_tls_files_with_plain_mqtt_warn_that_they_are_ignored(tmp_path: Path, tls: str) -> None:
    path = config_file(tmp_path, tls + "\nallow_insecure = true")
    path.write_text(path.read_text().replace("mqtts://", "mqtt://"))
    assert check_files(load_config(path)) == [
        f"warning: mqtt.{k}: ignored: mqtt.url is plain mqtt://" for k in ("ca", "cert", "key")
    ]


def test_camera_paths(tmp_path: Path) -> None:
    movie, video = tmp_path / "loop.h264", tmp_path / "video9"
    missing = "No such file or directory"
    cases = [
        (f'source = "file"\npath = "{movie}"', [f"error: camera.path: {movie}: {missing}"]),
        (f'source = "v4l2"\npath = "{video}"', [f"error: camera.path: {video}: {missing}"]),
        (
            f'source = "v4l2"\npath = "{tmp_path}"',
            [f"warning: camera.path: {tmp_path}: not a character device"],
        ),
        ('source = "v4l2"\npath = "/dev/null"', []),
    ]
    for camera, expected in cases:
        assert check_files(load_config(config_file(tmp_path, camera=camera))) == expected
    movie.write_bytes(b"\x00\x00\x00\x01")
    camera = f'source = "file"\npath = "{movie}"'
    assert check_files(load_config(config_file(tmp_path, camera=camera))) == []


def test_state_dir_must_be_creatable(tmp_path: Path) -> None:
    path = config_file(tmp_path)
    (tmp_path / "blocker").write_text("")
    path.write_text(path.read_text().replace("/state", "/blocker/state"))
    assert check_files(load_config(path)) == [
        f"error: device.state_dir: {tmp_path}/blocker is not a directory"
    ]
    assert not (tmp_path / "state").exists()  # checking creates nothing


def test_run_check_ok(tmp_path: Path, tls: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = config_file(tmp_path, tls)
    assert run_check(path) == 0
    out, err = capsys.readouterr()
    assert (out, err) == (f"ok: {path}\n", "")


def test_run_check_warnings_only_still_pass(
    tmp_path: Path, tls: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config_file(tmp_path, tls + '\nusername = "u"\npassword = "p"')
    os.chmod(path, 0o644)
    assert run_check(path) == 0
    out, err = capsys.readouterr()
    assert out == f"ok: {path}\n"
    assert err == (
        f"warning: {path}: holds a password or TURN credential and is readable by every user\n"
    )


def test_run_check_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = config_file(tmp_path, camera="framerate = 0\nwidth = 3")
    assert run_check(path) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"error: {path}:10: camera.framerate: must be 1..120, got 0",
        f"error: {path}:11: camera.width: must be even (H.264 4:2:0 halves it), got 3",
    ]
    path = config_file(tmp_path, f'cert = "{tmp_path}/nope.pem"\nkey = "{tmp_path}/nope.key"')
    assert run_check(path) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("error: ") == 2


def test_run_check_reports_schema_and_file_problems_together_at_their_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mqtt = f'cert = "{tmp_path}/nope.pem"\nkey = "{tmp_path}/nope.key"\nkeepalive = 1'
    movie = tmp_path / "gone.h264"
    path = config_file(tmp_path, mqtt, camera=f'source = "file"\npath = "{movie}"')
    assert run_check(path) == 1
    out, err = capsys.readouterr()
    missing = "No such file or directory"
    assert out == ""
    assert err.splitlines() == [
        f"error: {path}:7: mqtt.cert: {tmp_path}/nope.pem: {missing}",
        f"error: {path}:8: mqtt.key: {tmp_path}/nope.key: {missing}",
        f"error: {path}:9: mqtt.keepalive: must be 5..3600, got 1",
        f"error: {path}:13: camera.path: {movie}: {missing}",
    ]


def test_a_value_with_a_problem_of_its_own_is_not_opened_as_well(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A misspelt source leaves the default (picamera2) in place: probing that would report
    # a camera the file never asked for.
    probed: list[str] = []

    def probe(config: object) -> list[str]:
        probed.append("called")
        return ["no camera here"]

    path = config_file(tmp_path, camera='source = "fiel"')
    assert run_check(path, probe) == 1
    err = capsys.readouterr().err.splitlines()
    assert probed == [] and len(err) == 1
    assert err[0].startswith(f"error: {path}:10: camera.source: expected one of ")

    path = config_file(tmp_path, camera='source = "testsrc"')
    assert run_check(path, probe) == 1
    assert probed == ["called"]
    assert capsys.readouterr().err.splitlines() == [
        f"error: {path}:10: camera.source: no camera here"
    ]


def test_file_problems_of_an_override_point_at_the_override_file(
    tmp_path: Path, tls: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config_file(tmp_path, tls)
    state = tmp_path / "state"
    state.mkdir()
    override = state / "config.override.toml"
    override.write_text(f'[camera]\nsource = "file"\npath = "{tmp_path}/x.h264"\n')
    override.chmod(0o600)
    assert run_check(path) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"error: {override}:3: camera.path: {tmp_path}/x.h264: No such file or directory"
    ]
