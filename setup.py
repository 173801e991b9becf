"""Build hook: the wheel always carries the viewer's mqtt.js and its licence.

They are not in git (agent/web/vendor/ is made by `make web-deps`). When a build finds them
missing, it fetches the mqtt package at the version and integrity that
agent/web/package-lock.json pins, with `npm pack` (the npm registry, the tarball alone: no
install, no scripts run), checks the tarball's sha512 against the lock, and puts
dist/mqtt.min.js and LICENSE.md into the build. The checkout itself is left as it was.
Everything else about the package is in pyproject.toml.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
LOCK = HERE / "agent" / "web" / "package-lock.json"
VENDOR = Path("agent") / "web" / "vendor"
# file in the build -> member of the npm tarball
FILES = {"mqtt.min.js": "package/dist/mqtt.min.js", "mqtt.LICENSE.md": "package/LICENSE.md"}


def _pinned() -> tuple[str, str]:
    """mqtt's version and integrity ("sha512-<base64>") from the lock file."""
    entry = json.loads(LOCK.read_text())["packages"]["node_modules/mqtt"]
    return entry["version"], entry["integrity"]


def fetch_mqtt_js(target: Path) -> None:
    """Write FILES into `target` from the npm registry's tarball of the pinned mqtt."""
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit(
            "edgecam build: agent/web/vendor/mqtt.min.js is missing and npm is not installed "
            "to fetch it: install npm (apt-get install npm) or run `make web-deps` first"
        )
    version, integrity = _pinned()
    with tempfile.TemporaryDirectory(prefix="edgecam-mqttjs-") as tmp:
        out = subprocess.run(
            [
                npm,
                "pack",
                f"mqtt@{version}",
                "--silent",
                "--prefer-offline",
                "--pack-destination",
                tmp,
            ],
            capture_output=True,
            text=True,
            check=False,
            cwd=tmp,
        )
        if out.returncode != 0:
            raise SystemExit(f"edgecam build: npm pack mqtt@{version} failed: {out.stderr.strip()}")
        tarball = Path(tmp) / out.stdout.strip().splitlines()[-1]
        algorithm, _, expected = integrity.partition("-")
        digest = base64.b64encode(hashlib.new(algorithm, tarball.read_bytes()).digest()).decode()
        if digest != expected:
            raise SystemExit(
                f"edgecam build: mqtt@{version} does not match {LOCK.name}'s integrity"
            )
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tarball) as archive:
            for name, member in FILES.items():
                source = archive.extractfile(member)
                if source is None:
                    raise SystemExit(f"edgecam build: {member} missing from mqtt@{version}")
                (target / name).write_bytes(source.read())
    print(f"edgecam build: fetched mqtt.js {version} from the npm registry")


class BuildPyWithViewer(build_py):
    """build_py, then mqtt.js into the build when the checkout has none."""

    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / VENDOR
        if not all((target / name).is_file() for name in FILES):
            fetch_mqtt_js(target)


setup(cmdclass={"build_py": BuildPyWithViewer})
