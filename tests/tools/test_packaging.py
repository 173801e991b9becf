"""The wheel carries what `pip install edgecam-*.whl && edgecam demo` needs without a checkout:
the viewer page with its vendored mqtt.js (and licence), the config examples and the unit."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENDOR = ROOT / "agent" / "web" / "vendor"


def test_wheel_carries_viewer_assets_config_examples_and_unit(tmp_path: Path) -> None:
    if not (VENDOR / "mqtt.min.js").is_file():
        pytest.fail("agent/web/vendor/mqtt.min.js missing: run `make web-deps`", pytrace=False)
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    source = tmp_path / "src"  # a clean copy: no build/ or egg-info left in the checkout
    for name in filter(None, tracked.split("\0")):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    shutil.copytree(VENDOR, source / "agent" / "web" / "vendor")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), "."],
        cwd=source,
        check=True,
        capture_output=True,
        timeout=170,
    )
    (wheel,) = tmp_path.glob("edgecam-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "agent/web/index.html",
        "agent/web/viewer.js",
        "agent/web/vendor/mqtt.min.js",
        "agent/web/vendor/mqtt.LICENSE.md",
    ):
        assert needed in names
    data = {n.split(".data/data/", 1)[1] for n in names if ".data/data/" in n}
    assert data == {
        "share/edgecam/config/edgecam.example.toml",
        "share/edgecam/config/mosquitto.example.conf",
        "share/edgecam/config/mosquitto.acl.example",
        "share/edgecam/systemd/edgecam.service",
        "share/edgecam/systemd/install.sh",
        "share/doc/edgecam/README.md",
    }
