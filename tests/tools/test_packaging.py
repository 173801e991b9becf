"""`pip install edgecam-*.whl && edgecam demo` with no checkout: a wheel built from a fresh
`git clone` (so from what is committed, without the untracked agent/web/vendor/: the build
hook in setup.py fetches mqtt.js from the npm registry at the version package-lock.json pins)
is installed into a fresh venv, and the demo it installs plays in Chromium. Run inside
tests/tools/isolated.sh: the demo and the browser stay in its loopback-only namespace; only
the steps that need the package registries (the build, pip install) run in the network
namespace isolated.sh was started from (`nsenter`), as a user's machine would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import zipfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.infra.browsers import launch_chromium, open_page
from tests.infra.demo_process import URL, Demo
from tests.infra.tools import require_tool

ROOT = Path(__file__).resolve().parents[2]
# Building, a venv with the dependencies (from the pip cache or PyPI), and a demo: minutes.
pytestmark = pytest.mark.timeout(900)


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    outside: Path  # a directory with no checkout in it, to run from

    def bin(self, name: str) -> Path:
        return self.venv / "bin" / name


def _outer_netns() -> Path | None:
    """The network namespace of the nearest ancestor process outside ours (where isolated.sh
    was started: it reaches the registries), or None when we are not in a namespace of our own."""
    own = os.readlink("/proc/self/ns/net")
    pid = os.getppid()
    while pid > 1:
        ns = Path(f"/proc/{pid}/ns/net")
        with contextlib.suppress(OSError):
            if os.readlink(ns) != own:
                return ns
        stat = Path(f"/proc/{pid}/stat").read_text()
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return None


def _with_registries(argv: list[str | Path]) -> list[str | Path]:
    outer = _outer_netns()
    if outer is None:
        return argv
    return [require_tool("nsenter", "util-linux"), f"--net={outer}", *argv]


def _run(argv: list[str | Path], cwd: Path, timeout: float) -> str:
    done = subprocess.run(
        [str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        pytest.fail(f"{argv} failed:\n{done.stdout}\n{done.stderr}", pytrace=False)
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    require_tool("npm", "npm")  # the build hook fetches mqtt.js with it
    tmp = tmp_path_factory.mktemp("packaging")
    clone = tmp / "clone"
    _run(["git", "clone", "--quiet", ROOT, clone], tmp, 120)
    assert not (clone / "agent/web/vendor").exists()  # the hook, not a leftover, provides it
    dist = tmp / "dist"
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, "."]
    _run(_with_registries(build), clone, 300)
    (wheel,) = dist.glob("edgecam-*.whl")
    assert _run(["git", "status", "--porcelain"], clone, 30) == ""  # the clone stays clean
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", venv], tmp, 120)
    pip = [venv / "bin/python", "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    _run(_with_registries([*pip, f"edgecam[demo] @ {wheel.as_uri()}"]), tmp, 600)
    outside = tmp / "elsewhere"
    outside.mkdir()
    return Installed(wheel, venv, outside)


def test_wheel_from_a_fresh_clone_carries_mqtt_js_its_licence_config_examples_and_unit(
    installed: Installed,
) -> None:
    archive = zipfile.ZipFile(installed.wheel)
    names = set(archive.namelist())
    for needed in ("index.html", "viewer.js", "refusals.js", "style.css"):
        assert f"agent/web/{needed}" in names
    lock = json.loads((ROOT / "agent/web/package-lock.json").read_text())
    version = lock["packages"]["node_modules/mqtt"]["version"]
    script = archive.read("agent/web/vendor/mqtt.min.js").decode()
    assert script.startswith('"use strict";var mqtt=')  # the browser build: a global `mqtt`
    licence = archive.read("agent/web/vendor/mqtt.LICENSE.md").decode()
    assert "MIT" in licence and "Permission is hereby granted" in licence
    data = {n.split(".data/data/", 1)[1] for n in names if ".data/data/" in n}
    assert data == {
        "share/edgecam/config/edgecam.example.toml",
        "share/edgecam/config/mosquitto.example.conf",
        "share/edgecam/config/mosquitto.acl.example",
        "share/edgecam/systemd/edgecam.service",
        "share/edgecam/systemd/install.sh",
        "share/edgecam/systemd/firstrun.sh",
        "share/edgecam/systemd/edgecam-firstboot.service",
        "share/doc/edgecam/README.md",
    }
    print(f"wheel {installed.wheel.name}: mqtt.js {version}, {len(script)} bytes")


@asynccontextmanager
async def venv_demo(installed: Installed, *args: str) -> AsyncIterator[Demo]:
    """The venv's own `edgecam demo ARGS`, run away from any checkout, in its process group."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    process = await asyncio.create_subprocess_exec(
        str(installed.bin("edgecam")), "demo", *args,
        cwd=installed.outside, env=env, start_new_session=True,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    demo = Demo(process)
    try:
        yield demo
    except Exception as exc:
        raise AssertionError(f"{exc!r}\n--- edgecam demo printed ---\n{demo.text()}") from exc
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        await demo.reader


async def test_the_installed_wheel_runs_a_demo_that_plays_in_chromium(
    installed: Installed,
) -> None:
    where = _run(
        [installed.bin("python"), "-c", "import agent.web.server as s; print(s.WEB_ROOT)"],
        installed.outside, 60,
    )  # fmt: skip
    assert Path(where.strip()).is_relative_to(installed.venv)  # not this checkout
    async with venv_demo(installed, "--port", "0", "--size", "320x240") as demo:
        url = await asyncio.wait_for(demo.url, 60)
        async with launch_chromium() as browser:
            page = await open_page(browser, url)
            await page.wait_for_function(
                "window.edgecam && window.edgecam.framesDecoded() >= 30", timeout=60_000
            )
            assert (await page.evaluate("window.edgecam.stats().codec")).startswith("H264")
            assert await page.evaluate("window.edgecam.stats().width") == 320
        os.killpg(demo.process.pid, signal.SIGINT)
        assert await asyncio.wait_for(demo.process.wait(), 30) == 0


async def test_the_installed_demo_without_mqtt_js_stops_at_start_saying_why(
    installed: Installed,
) -> None:
    (site,) = installed.venv.glob("lib/python*/site-packages")
    script = site / "agent/web/vendor/mqtt.min.js"
    hidden = script.with_suffix(".hidden")
    script.rename(hidden)
    try:
        async with venv_demo(installed, "--port", "0") as demo:
            code = await asyncio.wait_for(demo.process.wait(), 60)
            await demo.reader
            text = demo.text()
    finally:
        hidden.rename(script)
    assert code != 0
    assert f"{script} is missing" in text
    assert "Traceback" not in text and not URL.search(demo.output)
