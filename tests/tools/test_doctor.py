"""`edgecam doctor` on an install made into a prefix, against a real mosquitto started from
what `edgecam broker-config` wrote for an `edgecam ca` (run inside tests/tools/isolated.sh,
as root: the install's files are owned by the service user of the prefix's /etc/passwd).

All green as installed; then one fault at a time, each named by the line it turns red.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from agent.tools import pki
from agent.tools.cli import main
from agent.tools.doctor import DoctorReport, run_doctor
from agent.tools.doctor_checks import check_clock
from agent.tools.doctor_host import Host, parse_unit, service_user
from agent.tools.doctor_result import Status
from tests.config.test_check import make_cert
from tests.infra.tools import free_port, require_tool, start_server, stop_process, tcp_accepts

ROOT = Path(__file__).resolve().parents[2]
UID = GID = 64123  # the prefix's own edgecam user: no such user on the host
CONFIG = Path("/etc/edgecam/edgecam.toml")
ALL_GREEN = (
    "unit",
    "user",
    "config",
    "camera",
    "encoder",
    "mqtt.ca",
    "certificate",
    "certificate CN",
    "key",
    "broker",
    "tls",
    "config file",
    "mqtt.ca file",
    "mqtt.cert file",
    "mqtt.key file",
    "device.state_dir",
)


@dataclass
class Install:
    root: Path
    ca: pki.Ca
    fleet: Path
    broker: object  # the mosquitto process (None: no broker)

    @property
    def etc(self) -> Path:
        return self.root / "etc" / "edgecam"

    def doctor(self) -> DoctorReport:
        return run_doctor(CONFIG, self.root)

    def set_camera(self, text: str) -> None:
        path = self.root / CONFIG.relative_to("/")
        body = path.read_text()
        path.write_text(body[: body.index("[camera]")] + f"[camera]\n{text}\n")

    def install_device_files(self, cert: Path, key: Path) -> None:
        for source, name, mode in ((cert, "device.pem", 0o644), (key, "device.key", 0o640)):
            target = self.etc / name
            shutil.copyfile(source, target)
            os.chown(target, 0, GID)
            target.chmod(mode)


def _write_config(etc: Path, tls_port: int) -> None:
    (etc / "edgecam.toml").write_text(
        '[device]\nid = "cam-01"\n\n'
        f'[mqtt]\nurl = "mqtts://localhost:{tls_port}"\nca = "/etc/edgecam/ca.pem"\n'
        'cert = "/etc/edgecam/device.pem"\nkey = "/etc/edgecam/device.key"\n\n'
        '[camera]\nsource = "testsrc"\nwidth = 320\nheight = 240\n'
    )


def _install(root: Path, fleet: Path, tls_port: int) -> None:
    """What an install step puts under a prefix: unit, program, user, config, PKI files."""
    units = root / "etc" / "systemd" / "system"
    units.mkdir(parents=True)
    shutil.copyfile(ROOT / "systemd" / "edgecam.service", units / "edgecam.service")
    program = root / "opt" / "edgecam" / "bin" / "edgecam"
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    (root / "etc" / "passwd").write_text(f"edgecam:x:{UID}:{GID}::/nonexistent:/bin/false\n")
    (root / "etc" / "group").write_text(f"edgecam:x:{GID}:\nvideo:x:44:edgecam\n")
    etc = root / "etc" / "edgecam"
    etc.mkdir(mode=0o755)
    _write_config(etc, tls_port)
    shutil.copyfile(fleet / "ca.pem", etc / "ca.pem")
    for name in ("edgecam.toml", "device.key"):
        if name == "device.key":
            shutil.copyfile(fleet / "device" / "cam-01.key", etc / name)
        os.chown(etc / name, 0, GID)
        (etc / name).chmod(0o640)
    shutil.copyfile(fleet / "device" / "cam-01.pem", etc / "device.pem")


def _pki(tmp_path: Path) -> tuple[pki.Ca, Path]:
    fleet = tmp_path / "pki"
    ca = pki.init_ca(fleet)
    pki.issue(ca, "device", "cam-01", out_dir=fleet)
    pki.issue(ca, "broker", "localhost", out_dir=fleet, sans=["localhost", "127.0.0.1"])
    return ca, fleet


@pytest.fixture
def installed(tmp_path: Path) -> Iterator[Install]:
    mosquitto = require_tool("mosquitto", "mosquitto")
    ca, fleet = _pki(tmp_path)
    tls_port, wss_port = free_port(), free_port()
    out = tmp_path / "broker"
    argv = ["broker-config", "--ca-dir", str(fleet), "--out", str(out), "--bind", "127.0.0.1"]
    argv += ["--tls-port", str(tls_port), "--wss-port", str(wss_port), "--run-as", "root"]
    assert main(argv) == 0
    proc = start_server(
        [mosquitto, "-c", str(out / "mosquitto.conf")],
        tmp_path / "mosquitto.log",
        ready=lambda: tcp_accepts("127.0.0.1", tls_port),
        timeout=10,
        what="mosquitto",
    )
    root = tmp_path / "root"
    root.mkdir()
    _install(root, fleet, tls_port)
    try:
        yield Install(root, ca, fleet, proc)
    finally:
        stop_process(proc)


@pytest.fixture
def offline(tmp_path: Path) -> Install:
    """The same install with no broker at all, for checks that never reach one."""
    ca, fleet = _pki(tmp_path)
    root = tmp_path / "root"
    root.mkdir()
    _install(root, fleet, free_port())
    return Install(root, ca, fleet, None)


def _failures(report: DoctorReport) -> dict[str, str]:
    return {r.name: r.detail for r in report.failures}


def test_a_good_install_is_all_green(
    installed: Install, capsys: pytest.CaptureFixture[str]
) -> None:
    report = installed.doctor()
    assert report.ok, "\n".join(report.lines())
    for name in ALL_GREEN:
        assert report.named(name).status is Status.OK, "\n".join(report.lines())
    # This machine's NTP state is what it is; either way the clock is not red.
    assert report.named("clock").status in (Status.OK, Status.WARN)
    assert report.named("service").status is Status.SKIP  # --root: not the running system
    assert "runs as edgecam" in report.named("user").detail

    argv = ["doctor", "--root", str(installed.root), "--config", str(CONFIG)]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(report.results) and not any("FAIL" in line for line in lines)
    assert main([*argv, "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["ok"] is True
    assert {c["name"]: c["status"] for c in body["checks"]}["tls"] == "ok"


def _expired_cert(ca: pki.Ca, key_path: Path, out: Path) -> Path:
    key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "cam-01")]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=400))
        .not_valid_after(now - datetime.timedelta(days=1))
        .sign(ca.key, hashes.SHA256())
    )
    out.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return out


def test_an_expired_certificate_is_named(installed: Install, tmp_path: Path) -> None:
    key = installed.fleet / "device" / "cam-01.key"
    installed.install_device_files(_expired_cert(installed.ca, key, tmp_path / "old.pem"), key)
    failures = _failures(installed.doctor())
    assert set(failures) == {"certificate", "tls"}, failures
    assert "/etc/edgecam/device.pem expired on " in failures["certificate"]
    assert "refused" in failures["tls"]  # mosquitto checks the dates too


def test_a_certificate_for_another_device_is_named(installed: Install) -> None:
    issued = pki.issue(installed.ca, "device", "cam-02", out_dir=installed.fleet)
    installed.install_device_files(issued.cert_path, issued.key_path)
    failures = _failures(installed.doctor())
    assert set(failures) == {"certificate CN"}, failures
    assert "'cam-02'" in failures["certificate CN"] and "'cam-01'" in failures["certificate CN"]


def test_a_key_the_service_cannot_read_is_named(installed: Install) -> None:
    key = installed.etc / "device.key"
    os.chown(key, 0, 0)  # root:root 0640: the edgecam user is neither
    failures = _failures(installed.doctor())
    assert set(failures) == {"mqtt.key file"}, failures
    assert "edgecam cannot read it (owner root:root, mode 0640)" in failures["mqtt.key file"]


def test_a_key_open_to_others_is_named(installed: Install) -> None:
    key = installed.etc / "device.key"
    key.chmod(0o644)
    assert "open to every user" in _failures(installed.doctor())["mqtt.key file"]
    key.chmod(0o640)
    os.chown(key, GID, 44)  # readable by group video: every camera user
    failures = _failures(installed.doctor())
    assert set(failures) == {"mqtt.key file"}, failures
    assert "readable by group video" in failures["mqtt.key file"]


def test_a_broker_that_is_down_is_named(installed: Install) -> None:
    stop_process(installed.broker)  # type: ignore[arg-type]
    report = installed.doctor()
    failures = _failures(report)
    assert set(failures) == {"broker"}, failures
    assert "Connection refused" in failures["broker"]
    assert report.named("tls").status is Status.SKIP


@pytest.mark.parametrize(
    ("camera", "named"),
    [
        ('source = "file"\npath = "/srv/edgecam/loop.h264"', "/srv/edgecam/loop.h264"),
        ('source = "v4l2"\npath = "/dev/video7"', "/dev/video7"),
    ],
)
def test_a_missing_camera_is_named(installed: Install, camera: str, named: str) -> None:
    installed.set_camera(camera)
    failures = _failures(installed.doctor())
    assert "camera" in failures, failures
    assert named in failures["camera"]
    # The file line names it too where the service would read it (not the probe's job).
    assert set(failures) <= {"camera", "camera.path"}, failures
    assert named in failures.get("camera.path", named)


def test_clock_before_the_certificates_is_red_and_unsynchronised_a_warning(
    tmp_path: Path,
) -> None:
    from agent.config import load_config

    cert, key = make_cert(tmp_path)
    path = tmp_path / "edgecam.toml"
    path.write_text(
        f'[device]\nid = "cam-01"\n[mqtt]\nurl = "mqtts://b"\ncert = "{cert}"\nkey = "{key}"\n'
    )
    config = load_config(path, state_dir_overrides=False)
    now = datetime.datetime.now(datetime.UTC)
    early = check_clock(config, True, now - datetime.timedelta(days=30))
    assert early.status is Status.FAIL and "notBefore" in early.detail
    assert check_clock(config, False, now).status is Status.WARN
    assert check_clock(config, None, now).status is Status.WARN
    assert check_clock(config, True, now).status is Status.OK


def test_service_identity_comes_from_the_unit_and_the_roots_group_file(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("cam:x:5000:5000::/:/bin/false\n")
    (tmp_path / "etc" / "group").write_text("cam:x:5000:\nvideo:x:44:\nextra:x:45:cam\n")
    unit = parse_unit(
        tmp_path / "u.service",
        "[Unit]\nUser=ignored\n[Service]\nUser=cam\nSupplementaryGroups=video\n"
        "ExecStart=-/opt/x/bin/edgecam run --config /etc/x.toml\n",
    )
    user = service_user(Host(tmp_path), unit)
    assert not isinstance(user, str)
    assert (user.name, user.uid, user.gid) == ("cam", 5000, 5000)
    assert user.groups == {5000, 44, 45}
    assert unit.exec_start[0] == "/opt/x/bin/edgecam" and unit.config_path == "/etc/x.toml"
    missing = parse_unit(tmp_path / "u.service", "[Service]\nUser=nobody-here-at-all\n")
    assert service_user(Host(tmp_path), missing) == "user 'nobody-here-at-all' does not exist"


def test_a_config_that_does_not_load_is_red_and_the_checks_needing_it_wait(
    offline: Install, capsys: pytest.CaptureFixture[str]
) -> None:
    path = offline.root / CONFIG.relative_to("/")
    path.write_text(path.read_text().replace('id = "cam-01"', 'id = "cam 01"\nidd = 1'))
    report = offline.doctor()
    failures = _failures(report)
    assert set(failures) == {"config"}, failures
    assert "device.id" in failures["config"] and "(1 more)" in failures["config"]
    assert report.named("camera, clock, broker").status is Status.SKIP
    assert main(["doctor", "--root", str(offline.root)]) == 1
    assert "edgecam check --config" in capsys.readouterr().out


def test_a_state_dir_the_unit_keeps_read_only_is_named(offline: Install) -> None:
    path = offline.root / CONFIG.relative_to("/")
    text = path.read_text().replace('id = "cam-01"\n', 'id = "cam-01"\nstate_dir = "/srv/cam"\n')
    path.write_text(text)
    (offline.root / "srv" / "cam").mkdir(parents=True)
    os.chown(offline.root / "srv" / "cam", UID, GID)
    failures = _failures(offline.doctor())
    assert "ProtectSystem=strict" in failures["device.state_dir"], failures


def test_a_missing_unit_or_user_is_named(offline: Install) -> None:
    (offline.root / "etc" / "passwd").write_text("")
    failures = _failures(offline.doctor())
    assert failures["user"] == "user 'edgecam' does not exist", failures
    (offline.root / "etc" / "systemd" / "system" / "edgecam.service").unlink()
    assert "no edgecam.service in" in _failures(offline.doctor())["unit"]


def test_the_service_is_not_checked_where_systemd_does_not_run(
    offline: Install, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent.tools import doctor_checks
    from agent.tools.doctor_result import Device

    monkeypatch.setattr(doctor_checks, "SYSTEMD_RUNNING", offline.root / "run" / "systemd")
    device = Device(Host(None), CONFIG, None, None, "no user")
    result = doctor_checks.check_service(device)
    assert (result.status, result.detail) == (Status.SKIP, "systemd is not running here")
