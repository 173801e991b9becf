"""`edgecam provision`: what OUT holds, where the key is (and is not), the cloud-init files
checked by the cloud-init package's own schema, and one-line errors."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from agent.config import load_config
from agent.tools import cloud_init, pki, provision
from agent.tools.cli import main
from tests.infra.tools import require_tool


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    pki.init_ca(tmp_path / "pki")
    return tmp_path / "pki"


def _provision(ca_dir: Path, out: Path, *extra: str) -> None:
    argv = ["provision", "cam-01", "--ca-dir", str(ca_dir), "--broker", "mqtt.example", "--out"]
    assert main([*argv, str(out), *extra]) == 0


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_key_on_device_puts_the_only_copy_of_the_key_in_the_bundle(
    ca_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    _provision(ca_dir, out)
    bundle = out / "boot" / "edgecam"
    key = serialization.load_pem_private_key((bundle / "device.key").read_bytes(), None)
    cert = x509.load_pem_x509_certificate((out / "device.pem").read_bytes())
    assert cert.public_key() == key.public_key()
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "cam-01"
    assert (ca_dir / "device" / "cam-01.pem").read_bytes() == (out / "device.pem").read_bytes()
    assert not (ca_dir / "device" / "cam-01.key").exists()
    assert not (out / "device.key").exists()
    assert _mode(bundle / "device.key") == 0o600
    assert (bundle / "install.sh").read_bytes() == Path("systemd/install.sh").read_bytes()
    assert "PRIVATE KEY" not in capsys.readouterr().out


def test_key_here_also_keeps_it_in_out_0600(ca_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _provision(ca_dir, out, "--key-here")
    assert _mode(out / "device.key") == 0o600
    assert (out / "device.key").read_bytes() == (out / "boot/edgecam/device.key").read_bytes()


def test_config_loads_and_names_the_files_install_sh_puts_in_etc(
    ca_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    _provision(ca_dir, out, "--camera", "testsrc")
    config = load_config(out / "edgecam.toml", state_dir_overrides=False)
    assert config.device.id == "cam-01"
    assert config.mqtt.url == "mqtts://mqtt.example:8883"
    assert (config.mqtt.ca, config.mqtt.cert, config.mqtt.key) == (
        "/etc/edgecam/ca.pem",
        "/etc/edgecam/device.pem",
        "/etc/edgecam/device.key",
    )
    assert config.access.role_for("viewer-alice") is not None
    assert config.camera.source.value == "testsrc"


def test_user_data_and_network_config_pass_cloud_inits_schema(ca_dir: Path, tmp_path: Path) -> None:
    tool = require_tool("cloud-init", "cloud-init")
    psk = tmp_path / "psk"
    psk.write_text("correct horse battery\n")
    out = tmp_path / "out"
    ssid = 'shop "floor": #2'
    _provision(ca_dir, out, "--wifi-ssid", ssid, "--wifi-psk-file", str(psk))
    user_data = out / "boot" / "user-data"
    run = subprocess.run([tool, "schema", "--config-file", str(user_data)], capture_output=True)
    assert run.returncode == 0, run.stdout + run.stderr
    document = yaml.safe_load(user_data.read_text())
    assert document["runcmd"] == [["bash", "/boot/firmware/edgecam/install.sh"]]
    assert document["hostname"] == "cam-01"
    # cloud-init 22.4 has no schema for network-config: its shape is checked here.
    network = yaml.safe_load((out / "boot" / "network-config").read_text())["network"]
    access_points = network["wifis"]["wlan0"]["access-points"]
    assert access_points == {ssid: {"password": "correct horse battery"}}
    assert _mode(out / "boot" / "network-config") == 0o600
    assert "instance-id" in yaml.safe_load((out / "boot" / "meta-data").read_text())


def test_the_schema_check_fails_on_a_broken_user_data(tmp_path: Path) -> None:
    tool = require_tool("cloud-init", "cloud-init")
    broken = tmp_path / "user-data"
    text = cloud_init.user_data("cam-01", None)
    broken.write_text(text.replace("package_update: true", "package_update: sometimes"))
    run = subprocess.run([tool, "schema", "--config-file", str(broken)], capture_output=True)
    assert run.returncode != 0


@given(st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=40))
def test_any_ssid_stays_one_yaml_value(ssid: str) -> None:
    text = cloud_init.network_config(cloud_init.Wifi(ssid, "12345678", "GB"))
    wlan = yaml.safe_load(text)["network"]["wifis"]["wlan0"]
    assert wlan["access-points"] == {ssid: {"password": "12345678"}}


@pytest.mark.parametrize(
    ("broker", "url"),
    [
        ("mqtt.example", "mqtts://mqtt.example:8883"),
        ("192.0.2.1:1884", "mqtts://192.0.2.1:1884"),
        ("[2001:db8::1]:8883", "mqtts://[2001:db8::1]:8883"),
    ],
)
def test_broker_url(broker: str, url: str) -> None:
    assert provision.broker_url(broker) == url


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--broker", "host:99999"], "port outside"),
        (["--broker", "a:b"], "HOST or HOST:PORT"),
        (["--wifi-ssid", "x"], "--wifi-psk-file"),
        (["--hostname", "Bad_Name"], "--hostname"),
        (["--wheel", "/nonexistent.whl"], "no such file"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    ca_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    argv = ["provision", "cam-01", "--ca-dir", str(ca_dir), "--broker", "h", "--out"]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, str(tmp_path / "out"), *extra])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (ca_dir / "device" / "cam-01.pem").exists()  # refused before issuing


def test_refuses_a_second_bundle_for_the_same_device(ca_dir: Path, tmp_path: Path) -> None:
    _provision(ca_dir, tmp_path / "one")
    with pytest.raises(SystemExit) as exit_info:
        _provision(ca_dir, tmp_path / "two")
    assert exit_info.value.code == 2


def test_help_explains_where_the_key_lives_and_each_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["provision", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for text in ("--key-on-device", "(the default)", "--key-here", "shreds", "default port 8883",
                 "default picamera2", "default 825", "cloud-init"):  # fmt: skip
        assert text in out, text


@pytest.mark.parametrize("missing", ["edgecam.toml", "wheel"])
def test_install_sh_stops_with_one_line_on_an_incomplete_bundle(
    ca_dir: Path, tmp_path: Path, missing: str
) -> None:
    out = tmp_path / "out"
    _provision(ca_dir, out)  # no --wheel
    bundle = out / "boot" / "edgecam"
    if missing == "edgecam.toml":
        (bundle / "edgecam.toml").unlink()
    script = ["bash", str(bundle / "install.sh"), "--root", str(tmp_path / "root")]
    run = subprocess.run(script, capture_output=True, text=True)
    assert run.returncode == 1
    assert len(run.stderr.strip().splitlines()) == 1
    assert ("edgecam.toml missing" if missing == "edgecam.toml" else "edgecam-*.whl") in run.stderr
    assert (bundle / "device.key").exists()  # nothing installed, nothing shredded


IMAGER_CMDLINE = (
    "console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 fsck.repair=yes"
    " rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot"
    " systemd.run=/boot/firmware/firstrun.sh systemd.run_success_action=reboot"
    " systemd.unit=kernel-command-line.target\n"
)


def test_bookworm_firstrun_enables_the_install_after_imagers_own_first_run(
    ca_dir: Path, tmp_path: Path
) -> None:
    """A Bookworm card: the bundle's firstrun.sh (run by cmdline.txt's systemd.run=) runs
    Imager's firstrun.sh first, removes every first-run argument from cmdline.txt, and
    enables the unit that runs install.sh once the network is up."""
    out, root = tmp_path / "out", tmp_path / "root"
    _provision(ca_dir, out)
    boot = root / "boot" / "firmware"
    shutil.copytree(out / "boot", boot)
    (boot / "cmdline.txt").write_text(IMAGER_CMDLINE)
    (boot / "firstrun.sh").write_text(f"#!/bin/bash\ntouch {tmp_path}/imager-ran\n")
    run = subprocess.run(
        ["bash", str(boot / "edgecam" / "firstrun.sh")],
        env={"FIRSTRUN_ROOT": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert (tmp_path / "imager-ran").exists()
    cmdline = (boot / "cmdline.txt").read_text()
    assert "systemd.run" not in cmdline and "kernel-command-line" not in cmdline
    assert cmdline.startswith("console=serial0,115200") and "init=/usr/lib/" in cmdline
    units = root / "etc" / "systemd" / "system"
    enabled = units / "multi-user.target.wants" / provision.FIRSTBOOT_UNIT
    assert enabled.resolve() == (units / provision.FIRSTBOOT_UNIT).resolve()
    unit = (units / provision.FIRSTBOOT_UNIT).read_text()
    assert "ExecStart=/bin/bash /boot/firmware/edgecam/install.sh" in unit
    assert "After=network-online.target" in unit


def test_the_firstboot_unit_verifies(tmp_path: Path) -> None:
    require_tool("systemd-analyze", "systemd")
    unit = tmp_path / provision.FIRSTBOOT_UNIT
    shutil.copy(Path("systemd") / provision.FIRSTBOOT_UNIT, unit)
    run = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stdout + run.stderr
