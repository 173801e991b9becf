"""`edgecam broker-config`: a real mosquitto starts from the written files, takes a device by
its certificate over TLS and a viewer by password over WSS (run inside tests/tools/isolated.sh)."""

from __future__ import annotations

import base64
import queue
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given
from hypothesis import strategies as st

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


@given(st.text(max_size=200))
def test_viewer_parse_returns_or_raises_value_error(text: str) -> None:
    try:
        viewer = broker_config.Viewer.parse(text)
    except ValueError:
        return
    assert f"{viewer.name}:{viewer.password}" == text


def test_help_names_every_option_and_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["broker-config", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for text in (
        "--tls-port",
        "default 8883",
        "--wss-port",
        "default 8884",
        "--viewer",
        "viewer-*",
        "--bind",
        "--run-as",
        "--topic-prefix",
        "default edgecam",
    ):
        assert text in out


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


@dataclass
class Broker:
    fleet: Path
    tls_port: int
    wss_port: int
    log: Path

    def tls(self, kind: str, name: str) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.fleet / "ca.pem"))
        ctx.load_cert_chain(self.fleet / kind / f"{name}.pem", self.fleet / kind / f"{name}.key")
        return ctx


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """mosquitto started from what `edgecam broker-config` wrote for a fresh `edgecam ca`."""
    mosquitto = require_tool("mosquitto", "mosquitto")
    fleet = tmp_path / "pki"
    ca = pki.init_ca(fleet)
    for kind, name in (("device", "cam-01"), ("device", "cam-02"), ("client", "ops-alice")):
        pki.issue(ca, kind, name, out_dir=fleet)  # type: ignore[arg-type]
    pki.issue(ca, "broker", "localhost", out_dir=fleet, sans=["localhost", "127.0.0.1"])
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
        yield Broker(fleet, tls_port, wss_port, log)
    finally:
        stop_process(proc)


def test_mosquitto_accepts_a_device_cert_over_tls_and_a_viewer_over_wss(broker: Broker) -> None:
    assert _connect(broker.tls_port, broker.tls("device", "cam-01")) == "Success"
    no_cert = ssl.create_default_context(cafile=str(broker.fleet / "ca.pem"))
    assert _connect(broker.tls_port, no_cert) == "disconnected before CONNACK"
    browser = ssl.create_default_context(cafile=str(broker.fleet / "ca.pem"))
    wss = {"websockets": True, "user": "viewer-alice"}
    assert _connect(broker.wss_port, browser, password="pw1", **wss) == "Success"  # type: ignore[arg-type]
    assert _connect(broker.wss_port, browser, password="bad", **wss) == "Not authorized"  # type: ignore[arg-type]
    assert "cam-01" in broker.log.read_text(errors="replace")


def _online(client: mqtt.Client, port: int) -> None:
    connected = threading.Event()
    client.on_connect = lambda *_args: connected.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    assert connected.wait(10), "no CONNACK"


def test_acl_pins_a_device_to_its_own_topics(broker: Broker) -> None:
    seen: queue.Queue[tuple[str, bytes]] = queue.Queue()
    watcher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="any")
    watcher.tls_set_context(broker.tls("client", "ops-alice"))
    watcher.on_message = lambda _c, _u, msg: seen.put((msg.topic, msg.payload))
    subscribed = threading.Event()
    watcher.on_subscribe = lambda *_args: subscribed.set()
    device = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="cam-02")
    device.tls_set_context(broker.tls("device", "cam-01"))
    try:
        _online(watcher, broker.tls_port)
        watcher.subscribe("edgecam/#", qos=1)
        assert subscribed.wait(10)
        _online(device, broker.tls_port)
        device.publish("edgecam/cam-02/status", b"spoofed", qos=1)
        device.publish("edgecam/cam-01/status", b"own", qos=1).wait_for_publish(10)
        # Same publisher, same QoS 1 session: had the spoofed one passed, it came first.
        assert seen.get(timeout=10) == ("edgecam/cam-01/status", b"own")
    finally:
        for client in (watcher, device):
            client.disconnect()
            client.loop_stop()


def test_errors_are_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["broker-config", "--ca-dir", str(tmp_path / "none"), "--out", str(tmp_path / "o")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "edgecam ca init" in err
