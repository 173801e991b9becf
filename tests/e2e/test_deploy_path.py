"""The README's "Deploy to a Raspberry Pi", end to end in a temp prefix (run inside
tests/tools/isolated.sh): `edgecam ca init`/`ca issue`, `edgecam provision`, `edgecam
broker-config`, mosquitto started from what it wrote, the bundle's install.sh run into the
prefix, `systemd-analyze verify` on the installed unit, the agent started from the unit's
ExecStart, then an aiortc viewer (client certificate, MQTT over TLS) and Chromium on the viewer
page (password account, MQTT over WSS) each play.

The agent installed is the wheel built from this checkout (`pip wheel --no-deps`), installed
with `install.sh --no-deps`: the namespace has no network, so its dependencies come from the
dev venv through a .pth file in the prefix's venv. The test asserts that `agent` is imported
from the prefix, not from the checkout. What stands in for the Pi: the camera (testsrc), the
root (a prefix, so nothing is started by systemd and the agent runs as this user), and
`[webrtc] ice_addresses` (loopback only), the one line the test adds to the installed config.
"""

from __future__ import annotations

import shlex
import shutil
import ssl
import subprocess
import sys
import sysconfig
import tomllib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import tomli_w

from agent.tools.cli import main
from agent.tools.doctor import run_doctor
from agent.tools.doctor_result import Status
from agent.web.server import ViewerServer, viewer_url
from tests.e2e.mqtt_rig import RpcClient, next_json, observer, watch
from tests.infra.browsers import launch_chromium, open_page, page_webrtc_stats
from tests.infra.tools import free_port, require_tool, start_server, stop_process, tcp_accepts

ROOT = Path(__file__).resolve().parents[2]
DEVICE = "cam-01"
VIEWER, SECRET = "viewer-web", "web-secret"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of this checkout's tracked files (no build/ or egg-info left behind)."""
    tmp = tmp_path_factory.mktemp("wheel")
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    source = tmp / "src"
    for name in filter(None, tracked.split("\0")):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run(
        [*pip, "-w", str(tmp), "."],
        cwd=source,
        check=True,
        capture_output=True,
        timeout=120,
    )
    (built,) = tmp.glob("edgecam-*.whl")
    return built


def edgecam(*argv: str) -> None:
    """One `edgecam` command, as the README gives it."""
    assert main(list(argv)) == 0, argv


@dataclass
class Fleet:
    """What the operator's machine holds after the README's steps, and the running broker."""

    pki: Path
    out: Path
    prefix: Path
    tls_port: int
    wss_port: int
    install_log: str

    def client_tls_context(self, cn: str | None) -> ssl.SSLContext:
        """A fleet tool's TLS context (its certificate issued on first use), for mqtt_rig."""
        assert cn is not None
        cert = self.pki / "client" / f"{cn}.pem"
        if not cert.exists():
            edgecam("ca", "issue", "client", cn, "--dir", str(self.pki))
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.pem"))
        ctx.load_cert_chain(cert, cert.with_suffix(".key"))
        return ctx


def doctor_says_ready(prefix: Path) -> None:
    """`edgecam doctor --root PREFIX` on the installed device, agent running: nothing red
    (the clock may only warn: this machine's sync state is not the test's)."""
    config = Path("/etc/edgecam/edgecam.toml")
    report = run_doctor(config, prefix)
    assert report.ok, "\n".join(report.lines(False))
    passed = {result.name for result in report.results if result.status is Status.OK}
    for name in ("unit", "user", "config", "camera", "certificate CN", "broker", "tls"):
        assert name in passed, "\n".join(report.lines(False))
    edgecam("doctor", "--config", str(config), "--root", str(prefix))


def _install(out: Path, prefix: Path) -> str:
    """The bundle's first-boot step, into the prefix; its dependencies from the dev venv."""
    base_python = getattr(sys, "_base_executable", sys.executable)
    script = out / "boot" / "edgecam" / "install.sh"
    argv = ["bash", str(script), "--root", str(prefix), "--python", base_python, "--no-deps"]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    site = Path(sysconfig.get_paths(vars={"base": str(prefix / "opt/edgecam")})["purelib"])
    (site / "dev-venv-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return run.stdout


def _verify_unit(prefix: Path) -> None:
    """systemd-analyze verify in the prefix, with the host's own units to depend on."""
    tool = require_tool("systemd-analyze", "systemd")
    shutil.copytree("/usr/lib/systemd/system", prefix / "usr/lib/systemd/system", symlinks=True)
    run = subprocess.run(
        [tool, "verify", f"--root={prefix}", "edgecam.service"], capture_output=True, text=True
    )
    assert (run.returncode, run.stdout + run.stderr) == (0, "")


@pytest.fixture
def fleet(tmp_path: Path, wheel: Path) -> Iterator[Fleet]:
    """The README's steps 1-4, and mosquitto running from step 3's files."""
    mosquitto = require_tool("mosquitto", "mosquitto")
    ca, out, broker_dir = (str(tmp_path / n) for n in ("pki", "out", "broker"))
    tls_port, wss_port = free_port(), free_port()
    edgecam("ca", "init", "--dir", ca)
    edgecam("ca", "issue", "broker", "localhost", "--dir", ca, "--san", "localhost", "127.0.0.1")
    argv = ["--ca-dir", ca, "--broker", f"localhost:{tls_port}", "--out", out]
    edgecam("provision", DEVICE, *argv, "--wheel", str(wheel), "--camera", "testsrc")
    argv = ["--ca-dir", ca, "--out", broker_dir, "--viewer", f"{VIEWER}:{SECRET}"]
    argv += ["--bind", "127.0.0.1", "--tls-port", str(tls_port), "--wss-port", str(wss_port)]
    edgecam("broker-config", *argv, "--run-as", "root")
    log = tmp_path / "mosquitto.log"
    proc = start_server(
        [mosquitto, "-c", f"{broker_dir}/mosquitto.conf"],
        log,
        ready=lambda: tcp_accepts("127.0.0.1", tls_port) and tcp_accepts("127.0.0.1", wss_port),
        timeout=10,
        what="mosquitto",
    )
    prefix = tmp_path / "root"
    try:
        installed = _install(Path(out), prefix)
        yield Fleet(Path(ca), Path(out), prefix, tls_port, wss_port, installed)
    finally:
        stop_process(proc)


def _check_installed(fleet: Fleet) -> None:
    """install.sh's files, owners and modes; the card's copy of the key is gone."""
    etc = fleet.prefix / "etc/edgecam"
    group = (fleet.prefix / "etc/group").read_text().splitlines()
    gid = next(int(line.split(":")[2]) for line in group if line.startswith("edgecam:"))
    assert any(line.startswith("video:") and "edgecam" in line for line in group)
    for name, mode, owner_gid in (("device.key", 0o640, gid), ("edgecam.toml", 0o640, gid),
                                  ("device.pem", 0o644, 0), ("ca.pem", 0o644, 0)):  # fmt: skip
        info = (etc / name).stat()
        assert (name, info.st_mode & 0o777, info.st_uid, info.st_gid) == (name, mode, 0, owner_gid)
    assert not (fleet.out / "boot/edgecam/device.key").exists()
    users = (fleet.prefix / "etc/passwd").read_text().splitlines()
    uid = next(int(line.split(":")[2]) for line in users if line.startswith("edgecam:"))
    state = (fleet.prefix / "var/lib/edgecam").stat()
    assert (state.st_mode & 0o777, state.st_uid, state.st_gid) == (0o700, uid, gid)
    assert (fleet.prefix / "usr/share/doc/edgecam/README.md").is_file()  # the unit's Documentation=
    assert "key: " in fleet.install_log and "BEGIN" not in fleet.install_log
    imported = subprocess.run(
        [str(fleet.prefix / "opt/edgecam/bin/python"), "-c", "import agent; print(agent.__file__)"],
        cwd=fleet.prefix,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert imported.startswith(str(fleet.prefix / "opt/edgecam/lib/")), imported


def _into_prefix(prefix: Path, text: str) -> str:
    return f"{prefix}{text}" if text.startswith("/") else text


def _agent_argv(prefix: Path) -> list[str]:
    """The installed unit's ExecStart, its paths moved into the prefix; the installed config's
    paths too, and the loopback-only ICE address of the namespace."""
    unit = (prefix / "etc/systemd/system/edgecam.service").read_text()
    (exec_start,) = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    argv = [_into_prefix(prefix, word) for word in shlex.split(exec_start.split("=", 1)[1])]
    config_path = Path(argv[argv.index("--config") + 1])
    config = tomllib.loads(config_path.read_text())
    config["device"]["state_dir"] = _into_prefix(prefix, config["device"]["state_dir"])
    for key in ("ca", "cert", "key"):
        config["mqtt"][key] = _into_prefix(prefix, config["mqtt"][key])
    config["webrtc"] = {"ice_addresses": ["127.0.0.1"]}
    config_path.write_text(tomli_w.dumps(config))
    return argv


def _install_again(fleet: Fleet) -> None:
    """install.sh run a second time (a re-run of first boot, or an update) keeps what is
    in place: the user, the venv, and the key the first run moved out of the bundle."""
    key = (fleet.prefix / "etc/edgecam/device.key").read_bytes()
    again = _install(fleet.out, fleet.prefix)
    for line in ("user edgecam: exists", "venv", "key: ", "kept", "done"):
        assert line in again, again
    assert (fleet.prefix / "etc/edgecam/device.key").read_bytes() == key
    users = (fleet.prefix / "etc/passwd").read_text().splitlines()
    assert [line.split(":")[0] for line in users] == ["edgecam"]


@pytest.fixture
def installed_agent(fleet: Fleet, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    _check_installed(fleet)
    _install_again(fleet)
    _verify_unit(fleet.prefix)
    argv = _agent_argv(fleet.prefix)
    config = argv[argv.index("--config") + 1]
    check = subprocess.run([argv[0], "check", "--config", config], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    log = tmp_path / "agent.log"
    proc = start_server(argv, log, ready=lambda: True, timeout=1, what="agent")
    try:
        yield proc
    finally:
        stop_process(proc, timeout=15)
    assert proc.returncode == 0, log.read_text()  # SIGTERM (the unit's KillSignal): clean exit


async def _online(fleet: Fleet) -> None:
    async with observer(fleet, f"edgecam/{DEVICE}/status") as watcher:  # type: ignore[arg-type]
        topic = f"edgecam/{DEVICE}/status"
        await next_json(watcher, topic, lambda body: body.get("state") == "online")


@pytest.fixture
async def site() -> AsyncIterator[ViewerServer]:
    if not (ROOT / "agent/web/vendor/mqtt.min.js").is_file():
        pytest.fail("agent/web/vendor/mqtt.min.js missing: run `make web-deps`", pytrace=False)
    server = ViewerServer()
    await server.start()
    yield server
    await server.stop()


async def test_from_ca_to_a_playing_viewer_and_browser(
    fleet: Fleet, installed_agent: subprocess.Popen[bytes], site: ViewerServer
) -> None:
    await _online(fleet)
    doctor_says_ready(fleet.prefix)
    async with RpcClient(fleet, "viewer-cli", DEVICE) as client:  # type: ignore[arg-type]
        viewer = await watch(client, "deploy-aiortc")
        try:
            await viewer.wait_frames(30)
            assert viewer.codec == "video/H264"
        finally:
            await viewer.close()
    url = viewer_url(
        site.url,
        broker=f"wss://localhost:{fleet.wss_port}",
        device=DEVICE,
        client=VIEWER,
        username=VIEWER,
        password=SECRET,
    )
    async with launch_chromium() as browser:
        # The broker's certificate is signed by the fleet CA, which this browser does not trust.
        page = await open_page(browser, url, ignore_https_errors=True)
        await page.wait_for_function(
            "window.edgecam && window.edgecam.framesDecoded() >= 30", timeout=30_000
        )
        stats = await page_webrtc_stats(page, "window.edgecam.pc")
        inbound = next(s for s in stats if s.get("type") == "inbound-rtp")
        codec = next(s for s in stats if s.get("id") == inbound["codecId"])
        assert codec["mimeType"].lower() == "video/h264"
    assert installed_agent.poll() is None
