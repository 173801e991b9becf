"""`edgecam broker-config`: a real mosquitto starts from the written files, takes a device by
its certificate over TLS and a viewer by password over WSS (run inside tests/tools/isolated.sh)."""

from __future__ import annotations

import base64
import ssl
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from agent.tools import broker_config, pki
from agent.tools.cli import main
from tests.infra.tools import free_port, require_tool, start_server, stop_process, tcp_accepts


def test_python_hash_is_what_mosquitto_passwd_computes() -> None:
    tool = require_tool("mosquitto_passwd", "mosquitto")
    line = broker_config.mosquitto_passwd_line(tool, "viewer-a", "s3cret:x")
    name, _, rest = line.partition(":")
    _, kind, rounds, salt, _digest = rest.split("$")
    assert (name, kind, int(rounds)) == ("viewer-a", "7", broker_config.PBKDF2_ITERATIONS)
    ours = broker_config.pbkdf2_line("viewer-a", "s3cret:x", base64.b64decode(salt))
    assert ours == line
    assert broker_config.pbkdf2_line("viewer-a", "other", base64.b64decode(salt)) != line


def test_viewer_names_must_match_an_access_pattern() -> None:
    assert broker_config.Viewer.parse("viewer-alice:pw:with:colons").password == "pw:with:colons"
    assert broker_config.Viewer.parse("ops-bob:pw").name == "ops-bob"
    for bad in ("viewer:pw", "alice:pw", "viewer-alice", "viewer-alice:"):
        with pytest.raises(ValueError):
            broker_config.Viewer.parse(bad)


def _connect(
    port: int,
    ctx: ssl.SSLContext,
    *,
    websockets: bool = False,
    user: str | None = None,
    password: str | None = None,
) -> mqtt.ReasonCode | str:
    """CONNECT and return the CONNACK reason (or the connection error)."""
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id="chosen-by-client",
        transport="websockets" if websockets else "tcp",
    )
    client.tls_set_context(ctx)
    if user is not None:
        client.username_pw_set(user, password)
    done = threading.Event()
    result: list[mqtt.ReasonCode | str] = []

    def on_connect(_c: object, _u: object, _f: object, reason: mqtt.ReasonCode, _p: object) -> None:
        result.append(reason)
        done.set()

    def on_disconnect(*_args: object) -> None:
        result.append("disconnected before CONNACK")
        done.set()

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    try:
        client.connect("127.0.0.1", port)
    except (OSError, ssl.SSLError) as exc:
        return f"refused: {exc}"
    client.loop_start()
    try:
        if not done.wait(10):
            return "no CONNACK"
    finally:
        client.disconnect()
        client.loop_stop()
    return result[0]


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    ca = pki.init_ca(tmp_path / "pki")
    pki.issue(ca, "device", "cam-01", out_dir=tmp_path / "pki")
    pki.issue(ca, "broker", "localhost", out_dir=tmp_path / "pki", sans=["localhost", "127.0.0.1"])
    return tmp_path / "pki"


def test_mosquitto_accepts_a_device_cert_over_tls_and_a_viewer_over_wss(
    tmp_path: Path, fleet: Path
) -> None:
    mosquitto = require_tool("mosquitto", "mosquitto")
    tls_port, wss_port = free_port(), free_port()
    out = tmp_path / "broker"
    argv = ["broker-config", "--ca-dir", str(fleet), "--out", str(out), "--bind", "127.0.0.1"]
    argv += ["--tls-port", str(tls_port), "--wss-port", str(wss_port), "--run-as", "root"]
    assert main([*argv, "--viewer", "viewer-alice:pw1"]) == 0
    log = tmp_path / "mosquitto.log"
    proc = start_server(
        [mosquitto, "-c", str(out / "mosquitto.conf")],
        log,
        ready=lambda: tcp_accepts("127.0.0.1", tls_port) and tcp_accepts("127.0.0.1", wss_port),
        timeout=10,
        what="mosquitto",
    )
    try:
        device = ssl.create_default_context(cafile=str(fleet / "ca.pem"))
        device.load_cert_chain(fleet / "device" / "cam-01.pem", fleet / "device" / "cam-01.key")
        assert _connect(tls_port, device) == "Success"
        no_cert = ssl.create_default_context(cafile=str(fleet / "ca.pem"))
        assert _connect(tls_port, no_cert) == "disconnected before CONNACK"
        browser = ssl.create_default_context(cafile=str(fleet / "ca.pem"))
        assert (
            _connect(wss_port, browser, websockets=True, user="viewer-alice", password="pw1")
            == "Success"
        )
        assert (
            _connect(wss_port, browser, websockets=True, user="viewer-alice", password="bad")
            == "Not authorized"
        )
    finally:
        stop_process(proc)
    assert "cam-01" in log.read_text(errors="replace")


def test_errors_are_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["broker-config", "--ca-dir", str(tmp_path / "none"), "--out", str(tmp_path / "o")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "edgecam ca init" in err
