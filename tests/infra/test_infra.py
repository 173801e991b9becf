"""Proof that each piece of test infrastructure really works: broker, TURN, namespaces, browsers."""

# The fixtures are imported by name so this file runs on its own; pytest finds them that way,
# and each test parameter "redefines" the import for pyflakes.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import queue
import select
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import aioice
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from playwright.async_api import Browser

from tests.infra.browsers import (  # noqa: F401
    BidiError,
    FirefoxBidi,
    chromium,
    evaluate,
    firefox,
    launch_chromium,
    launch_firefox,
    open_page,
    page_webrtc_stats,
)
from tests.infra.coturn import Coturn, coturn_server, stun_binding_answered  # noqa: F401
from tests.infra.mosquitto import MosquittoBroker, acl_lines, mosquitto_broker  # noqa: F401
from tests.infra.netns import NETNS_DIR, Topology
from tests.infra.pki import Pki, pki  # noqa: F401
from tests.infra.tools import tcp_accepts

WAIT = 5.0


class Probe:
    """A paho client whose callbacks feed thread-safe events and a message queue."""

    def __init__(self, client_id: str, *, transport: str = "tcp") -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
            transport=transport,  # type: ignore[arg-type]
        )
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.connect_reason: Any = None
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.subacks: queue.Queue[list[Any]] = queue.Queue()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        # Our own network loop instead of loop_start(): paho's never reconnects here and
        # stops at once (loop_start's thread sleeps up to a second in select on shutdown).
        while not self._stop.is_set():
            if self.client.loop(timeout=0.02) != mqtt.MQTT_ERR_SUCCESS:
                self._stop.wait(0.02)

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.connect_reason = reason
        if not reason.is_failure:
            self.connected.set()

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.connect_reason = self.connect_reason or reason
        self.disconnected.set()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self.messages.put((msg.topic, bytes(msg.payload)))

    def _on_subscribe(self, _c: Any, _u: Any, _mid: Any, reasons: Any, _p: Any) -> None:
        self.subacks.put(list(reasons))

    def try_connect(self, host: str, port: int) -> bool:
        """Connect and wait for CONNACK success (True) or a refusal or drop (False)."""
        try:
            self.client.connect(host, port, keepalive=10)
        except (OSError, ssl.SSLError):
            return False
        self._thread.start()
        for _ in range(int(WAIT / 0.05)):
            if self.connected.wait(0.05):
                return True
            if self.disconnected.is_set():
                return False
        raise AssertionError(f"neither connected nor refused within {WAIT} s")

    def subscribe(self, topic: str) -> list[Any]:
        self.client.subscribe(topic, qos=1)
        return self.subacks.get(timeout=WAIT)

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(WAIT)

    def next_message(self) -> tuple[str, bytes]:
        return self.messages.get(timeout=WAIT)

    def close(self) -> None:
        self.client.disconnect()
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(WAIT)


@pytest.fixture
def probes() -> Any:
    made: list[Probe] = []

    def make(client_id: str, broker: MosquittoBroker, cn: str | None = None) -> Probe:
        probe = Probe(client_id)
        probe.client.tls_set_context(broker.client_tls_context(cn if cn else client_id))
        made.append(probe)
        assert probe.try_connect("localhost", broker.tls_port), probe.connect_reason
        return probe

    yield make
    for probe in made:
        probe.close()


# --- PKI -------------------------------------------------------------------------------------


def test_pki_issues_server_cert_that_verifies_for_localhost_and_ip(pki: Pki) -> None:
    cert, key = pki.issue("server")
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(pki.ca_path))
    for name in ("localhost", "127.0.0.1"):
        a, b = socket.socketpair()
        with a, b:
            result: list[str] = []

            def serve(sock: socket.socket = a, result: list[str] = result) -> None:
                with server_ctx.wrap_socket(sock, server_side=True) as tls:
                    result.append(tls.version() or "")

            thread = threading.Thread(target=serve)
            thread.start()
            with client_ctx.wrap_socket(b, server_hostname=name) as tls:
                peer = tls.getpeercert()
                assert peer is not None
                assert peer["subject"] == ((("commonName", "server"),),)
            thread.join(WAIT)
            assert result


def test_pki_refuses_a_certificate_with_no_purpose(pki: Pki) -> None:
    with pytest.raises(ValueError):
        pki.issue("nothing", server_names=(), client=False)


# --- mosquitto -------------------------------------------------------------------------------


def test_mosquitto_tls_client_with_certificate_connects_hostname_checked(
    mosquitto_broker: MosquittoBroker, probes: Any
) -> None:
    probe = probes("cam-01", mosquitto_broker)
    assert probe.connected.is_set()
    # 127.0.0.1 is in the server certificate's SAN too; a name not in it is rejected.
    ip_probe = Probe("cam-ip")
    ip_probe.client.tls_set_context(mosquitto_broker.client_tls_context("cam-ip"))
    assert ip_probe.try_connect("127.0.0.1", mosquitto_broker.tls_port)
    ip_probe.close()


def test_mosquitto_server_name_not_in_certificate_is_rejected_by_client(
    mosquitto_broker: MosquittoBroker,
) -> None:
    ctx = mosquitto_broker.client_tls_context("cam-01")
    address = ("127.0.0.1", mosquitto_broker.tls_port)
    with (
        socket.create_connection(address, timeout=WAIT) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        ctx.wrap_socket(raw, server_hostname="not-the-broker.example")


def test_mosquitto_refuses_client_without_certificate(
    mosquitto_broker: MosquittoBroker,
) -> None:
    probe = Probe("anon")
    probe.client.tls_set_context(mosquitto_broker.client_tls_context(None))
    assert not probe.try_connect("localhost", mosquitto_broker.tls_port)
    probe.close()


def test_mosquitto_device_is_pinned_to_its_own_subtree(
    mosquitto_broker: MosquittoBroker, probes: Any
) -> None:
    watcher = probes("watcher", mosquitto_broker)
    assert watcher.subscribe("edgecam/+/status")[0].value < 0x80
    cam = probes("cam-01", mosquitto_broker)
    cam.publish("edgecam/cam-02/status", b"forged")
    cam.publish("edgecam/cam-01/status", b"sentinel")
    assert watcher.next_message() == ("edgecam/cam-01/status", b"sentinel")
    assert watcher.messages.empty()


def test_mosquitto_client_writes_only_its_own_rpc_topic(
    mosquitto_broker: MosquittoBroker, probes: Any
) -> None:
    cam = probes("cam-01", mosquitto_broker)
    assert cam.subscribe("edgecam/cam-01/rpc/+")[0].value < 0x80
    viewer = probes("viewer-1", mosquitto_broker)
    viewer.publish("edgecam/cam-01/rpc/viewer-2", b"impersonation")
    viewer.publish("edgecam/cam-01/rpc/viewer-1", b"sentinel")
    assert cam.next_message() == ("edgecam/cam-01/rpc/viewer-1", b"sentinel")
    assert cam.messages.empty()


def test_mosquitto_client_reads_only_its_own_replies(
    mosquitto_broker: MosquittoBroker, probes: Any
) -> None:
    viewer = probes("viewer-1", mosquitto_broker)
    assert viewer.subscribe("edgecam/cam-01/rpc/viewer-1/reply")[0].value < 0x80
    # Both refused at SUBSCRIBE or filtered on delivery: either way nothing may arrive.
    viewer.subscribe("edgecam/cam-01/rpc/viewer-2/reply")
    viewer.subscribe("edgecam/cam-01/rpc/+/reply")
    cam = probes("cam-01", mosquitto_broker)
    cam.publish("edgecam/cam-01/rpc/viewer-2/reply", b"not yours")
    cam.publish("edgecam/cam-01/rpc/viewer-1/reply", b"sentinel")
    received = {viewer.next_message()}
    # The sentinel matches two of the viewer's subscriptions; MQTT v5 may deliver it twice.
    while not viewer.messages.empty():
        received.add(viewer.messages.get_nowait())
    assert received == {("edgecam/cam-01/rpc/viewer-1/reply", b"sentinel")}


def test_mosquitto_everyone_reads_status_events_telemetry(
    mosquitto_broker: MosquittoBroker, probes: Any
) -> None:
    viewer = probes("viewer-1", mosquitto_broker)
    for kind in ("status", "events", "telemetry"):
        assert viewer.subscribe(f"edgecam/+/{kind}")[0].value < 0x80
    cam = probes("cam-01", mosquitto_broker)
    for kind in ("status", "events", "telemetry"):
        cam.publish(f"edgecam/cam-01/{kind}", kind.encode())
        assert viewer.next_message() == (f"edgecam/cam-01/{kind}", kind.encode())


def test_mosquitto_websocket_viewer_needs_password(mosquitto_broker: MosquittoBroker) -> None:
    good = Probe("viewer-ws", transport="websockets")
    good.client.username_pw_set("viewer", "viewer-secret")
    assert good.try_connect("127.0.0.1", mosquitto_broker.ws_port)
    assert good.subscribe("edgecam/+/status")[0].value < 0x80
    good.close()
    bad = Probe("viewer-ws2", transport="websockets")
    bad.client.username_pw_set("viewer", "wrong")
    assert not bad.try_connect("127.0.0.1", mosquitto_broker.ws_port)
    bad.close()


def test_mosquitto_restart_after_kill_reuses_ports(
    mosquitto_broker: MosquittoBroker, probes: Any
) -> None:
    ports = (mosquitto_broker.tls_port, mosquitto_broker.ws_port)
    probe = probes("cam-01", mosquitto_broker)
    mosquitto_broker.kill()
    assert not mosquitto_broker.running
    assert probe.disconnected.wait(WAIT)
    mosquitto_broker.restart()
    assert (mosquitto_broker.tls_port, mosquitto_broker.ws_port) == ports
    again = probes("cam-01b", mosquitto_broker)
    assert again.connected.is_set()


def test_mosquitto_wss_listener(tmp_path: Path, pki: Pki) -> None:
    with MosquittoBroker(tmp_path / "wss", pki, ws_tls=True) as broker:
        assert broker.ws_url.startswith("wss://")
        probe = Probe("viewer-wss", transport="websockets")
        probe.client.tls_set_context(broker.client_tls_context(None))
        probe.client.username_pw_set("viewer", "viewer-secret")
        assert probe.try_connect("localhost", broker.ws_port)
        probe.close()


# --- coturn ----------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
async def test_coturn_allocates_relay_candidate(coturn_server: Coturn, transport: str) -> None:
    conn = aioice.Connection(
        ice_controlling=True,
        components=1,
        turn_server=(
            coturn_server.host,
            coturn_server.tls_port if transport == "tls" else coturn_server.port,
        ),
        turn_username=coturn_server.username,
        turn_password=coturn_server.password,
        turn_transport="udp" if transport == "udp" else "tcp",
        # aioice passes an SSLContext through to asyncio although it annotates `bool`.
        turn_ssl=coturn_server.client_ssl_context() if transport == "tls" else False,  # type: ignore[arg-type]
    )
    try:
        await asyncio.wait_for(conn.gather_candidates(), WAIT)
        relays = [c for c in conn.local_candidates if c.type == "relay"]
        assert len(relays) == 1
        assert relays[0].host == coturn_server.host
        assert relays[0].transport == "udp"
    finally:
        await conn.close()


async def test_coturn_rejects_wrong_password(coturn_server: Coturn) -> None:
    conn = aioice.Connection(
        ice_controlling=True,
        turn_server=(coturn_server.host, coturn_server.port),
        turn_username=coturn_server.username,
        turn_password="wrong",
    )
    try:
        await asyncio.wait_for(conn.gather_candidates(), WAIT)
        assert [c for c in conn.local_candidates if c.type == "relay"] == []
    finally:
        await conn.close()


async def test_coturn_tls_is_really_tls(coturn_server: Coturn) -> None:
    # A client that does not trust the test CA gets no relay: the TURN link was TLS.
    untrusting = ssl.create_default_context()
    conn = aioice.Connection(
        ice_controlling=True,
        turn_server=(coturn_server.host, coturn_server.tls_port),
        turn_username=coturn_server.username,
        turn_password=coturn_server.password,
        turn_transport="tcp",
        turn_ssl=untrusting,  # type: ignore[arg-type]
    )
    try:
        await asyncio.wait_for(conn.gather_candidates(), WAIT)
        assert [c for c in conn.local_candidates if c.type == "relay"] == []
    finally:
        await conn.close()


# --- network namespaces ----------------------------------------------------------------------

_LISTENER = """
import socket, sys
srv = socket.create_server((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
while True:
    conn, _ = srv.accept()
    conn.sendall(b"hello")
    conn.close()
"""

_CONNECT = """
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])) as s:
        print(s.recv(5).decode())
except OSError as exc:
    print("failed", type(exc).__name__)
"""


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "no output within the time limit"
    return proc.stdout.readline().strip()


def _tcp_hello(host: str, port: int, timeout: float) -> str:
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            return sock.recv(5).decode()
    except OSError as exc:
        return f"failed {type(exc).__name__}"


def test_netns_topology_isolates_agent_from_viewer(tmp_path: Path, pki: Pki) -> None:
    python = sys.executable
    with Topology() as topo:
        agent, viewer, turn = (topo.add_host(n) for n in ("agent", "viewer", "turn"))
        topo.isolate(agent, viewer)
        assert len({agent.address, viewer.address, turn.address}) == 3
        # The 10.77 addresses exist only inside the topology, not where pytest runs.
        with pytest.raises(OSError), socket.socket() as outside:
            outside.bind((viewer.address, 0))

        listener = topo.run_in(
            viewer,
            [python, "-c", _LISTENER, viewer.address, "9000"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert _read_line(listener, WAIT) == "ready"
        with Coturn(tmp_path / "turn", pki, host=turn.address, netns=turn.netns) as server:
            with topo.enter(agent):
                assert stun_binding_answered(turn.address, server.port, timeout=WAIT)
                assert tcp_accepts(turn.address, server.port, timeout=WAIT)
                # Silently dropped by the router: a connect can only time out.
                assert _tcp_hello(viewer.address, 9000, 0.5) == "failed TimeoutError"
            with topo.enter(viewer):
                assert stun_binding_answered(turn.address, server.port, timeout=WAIT)
            # Positive control: the viewer's listener is up and reachable from elsewhere.
            with topo.enter(turn):
                assert _tcp_hello(viewer.address, 9000, WAIT) == "hello"
            # The same from processes started inside the namespaces.
            from_agent = topo.run(agent, [python, "-c", _CONNECT, viewer.address, "9000", "0.5"])
            assert from_agent.stdout.strip() == "failed TimeoutError"
            from_turn = topo.run(turn, [python, "-c", _CONNECT, viewer.address, "9000", "5"])
            assert from_turn.stdout.strip() == "hello"
        names = [h.netns for h in (agent, viewer, turn)] + [topo.router]
    assert not any((NETNS_DIR / name).exists() for name in names)
    assert listener.poll() is not None


async def test_netns_agent_gets_turn_relay_inside_topology(tmp_path: Path, pki: Pki) -> None:
    with Topology() as topo:
        agent, turn = topo.add_host("agent"), topo.add_host("turn")
        with Coturn(tmp_path / "turn", pki, host=turn.address, netns=turn.netns) as server:
            conn = aioice.Connection(
                ice_controlling=True,
                turn_server=(server.host, server.port),
                turn_username=server.username,
                turn_password=server.password,
            )
            try:
                # aioice's sockets are made during the gather, so they belong to the agent.
                with topo.enter(agent):
                    await asyncio.wait_for(conn.gather_candidates(), WAIT)
                kinds = {(c.type, c.host) for c in conn.local_candidates}
                assert ("host", agent.address) in kinds
                assert ("relay", turn.address) in kinds
            finally:
                await conn.close()


def test_netns_topology_cleans_up_after_failure() -> None:
    topo = Topology()
    with pytest.raises(RuntimeError, match="boom"), topo:
        topo.add_host("agent")
        raise RuntimeError("boom")
    assert not any(p.name.startswith(topo.tag) for p in NETNS_DIR.iterdir())


# --- browsers --------------------------------------------------------------------------------

# Resolves with the offer SDP once ICE gathering completes (or after 5 s, with what it has).
_GATHER_OFFER = """
(async () => {
  const pc = new RTCPeerConnection();
  window.pc = pc;
  pc.createDataChannel("control");
  if (%(video)s) pc.addTransceiver("video", {direction: "recvonly"});
  const complete = new Promise(resolve => {
    pc.onicegatheringstatechange = () => {
      if (pc.iceGatheringState === "complete") resolve();
    };
    setTimeout(resolve, 5000);
  });
  await pc.setLocalDescription(await pc.createOffer());
  await complete;
  return pc.localDescription.sdp;
})()
"""


def _candidate_addresses(sdp: str) -> set[str]:
    return {line.split()[4] for line in sdp.splitlines() if line.startswith("a=candidate:")}


async def test_chromium_evaluates_and_gathers_loopback_candidate(chromium: Browser) -> None:
    page = await open_page(chromium)
    assert await evaluate(page, "1 + 1") == 2
    sdp = await asyncio.wait_for(evaluate(page, _GATHER_OFFER % {"video": "true"}), 2 * WAIT)
    assert "m=video" in sdp and "webrtc-datachannel" in sdp
    assert "127.0.0.1" in _candidate_addresses(sdp)
    stats = await page_webrtc_stats(page)
    local = [s for s in stats if s["type"] == "local-candidate"]
    assert any(s["address"] == "127.0.0.1" for s in local)


async def test_firefox_evaluates_and_gathers_loopback_candidate(firefox: FirefoxBidi) -> None:
    assert await firefox.evaluate("1 + 1") == 2
    assert await firefox.evaluate("({a: [1, 'x', null], b: true})") == {
        "a": [1, "x", None],
        "b": True,
    }
    with pytest.raises(BidiError, match="nope"):
        await firefox.evaluate("(async () => { throw new Error('nope'); })()")
    await firefox.navigate("data:text/html,<title>edgecam</title>")
    assert await firefox.evaluate("document.title") == "edgecam"
    sdp = await firefox.evaluate(_GATHER_OFFER % {"video": "false"}, timeout=2 * WAIT)
    assert "webrtc-datachannel" in sdp
    assert "127.0.0.1" in _candidate_addresses(sdp)
    await firefox.evaluate("console.log('from firefox')")
    assert await firefox.evaluate_json("Promise.resolve({n: 3})") == {"n": 3}


async def test_browsers_run_inside_a_topology_namespace(tmp_path: Path) -> None:
    with Topology() as topo:
        viewer = topo.add_host("viewer")
        async with launch_chromium(netns=viewer.netns) as browser:
            page = await open_page(browser)
            sdp = await asyncio.wait_for(
                evaluate(page, _GATHER_OFFER % {"video": "false"}), 2 * WAIT
            )
            assert viewer.address in _candidate_addresses(sdp)
        async with launch_firefox(tmp_path / "ff", netns=viewer.netns) as firefox:
            sdp = await firefox.evaluate(_GATHER_OFFER % {"video": "false"}, timeout=2 * WAIT)
            assert viewer.address in _candidate_addresses(sdp)


def test_mosquitto_bound_client_id_cannot_read_another_clients_replies(
    tmp_path: Path, pki: Pki
) -> None:
    with MosquittoBroker(tmp_path / "bound", pki, bind_client_id=True) as broker:
        # Certificate says viewer-1, the client claims to be viewer-2: the broker renames it.
        spoof = Probe("viewer-2")
        spoof.client.tls_set_context(broker.client_tls_context("viewer-1"))
        assert spoof.try_connect("localhost", broker.tls_port)
        spoof.subscribe("edgecam/cam-01/rpc/viewer-2/reply")
        spoof.subscribe("edgecam/cam-01/rpc/viewer-1/reply")
        cam = Probe("cam-01")
        cam.client.tls_set_context(broker.client_tls_context("cam-01"))
        assert cam.try_connect("localhost", broker.tls_port)
        cam.publish("edgecam/cam-01/rpc/viewer-2/reply", b"not yours")
        cam.publish("edgecam/cam-01/rpc/viewer-1/reply", b"sentinel")
        assert spoof.next_message() == ("edgecam/cam-01/rpc/viewer-1/reply", b"sentinel")
        assert spoof.messages.empty()
        cam.close()
        spoof.close()


def test_mosquitto_example_config_and_acl_work(tmp_path: Path, pki: Pki) -> None:
    config_dir = Path(__file__).resolve().parents[2] / "config"
    acl_example = (config_dir / "mosquitto.acl.example").read_text()
    rules = [line for line in acl_example.splitlines() if line and not line.startswith("#")]
    assert rules == acl_lines("edgecam")

    broker = MosquittoBroker(tmp_path / "example", pki, ws_tls=True)
    # The production file with this machine's paths and ports swapped in, nothing else.
    swap = {
        "cafile": str(pki.ca_path),
        "certfile": str(broker.cert_path),
        "keyfile": str(broker.key_path),
        "password_file": str(broker.passwd_path),
        "acl_file": str(broker.acl_path),
    }
    listeners = {
        "8883": f"listener {broker.tls_port} 127.0.0.1",
        "8884": f"listener {broker.ws_port} 127.0.0.1\nsocket_domain ipv4",
    }
    lines = ["user root", "persistence false", "log_dest stderr"]
    for line in (config_dir / "mosquitto.example.conf").read_text().splitlines():
        key, _, value = line.partition(" ")
        if key in swap:
            line = f"{key} {swap[key]}"
        elif key == "listener":
            line = listeners[value]
        lines.append(line)
    broker.conf_path.write_text("\n".join(lines) + "\n")
    broker.acl_path.write_text(acl_example)
    with broker:
        device = Probe("whatever")
        device.client.tls_set_context(broker.client_tls_context("cam-01"))
        assert device.try_connect("localhost", broker.tls_port)
        viewer = Probe("viewer-x", transport="websockets")
        viewer.client.tls_set_context(broker.client_tls_context(None))
        viewer.client.username_pw_set("viewer", "viewer-secret")
        assert viewer.try_connect("localhost", broker.ws_port)
        viewer.subscribe("edgecam/+/status")
        # The device's client id became its CN; its own subtree is writable.
        device.publish("edgecam/cam-01/status", b"online")
        assert viewer.next_message() == ("edgecam/cam-01/status", b"online")
        device.close()
        viewer.close()


_WS_OPENS = """url => new Promise(resolve => {
  const ws = new WebSocket(url, "mqtt");
  ws.onopen = () => { ws.close(); resolve("open"); };
  ws.onerror = () => resolve("error");
})"""


async def test_chromium_reaches_wss_broker_only_with_https_errors_ignored(
    chromium: Browser, tmp_path: Path, pki: Pki
) -> None:
    with MosquittoBroker(tmp_path / "wss", pki, ws_tls=True) as broker:
        strict = await open_page(chromium)
        assert await evaluate(strict, _WS_OPENS, broker.ws_url) == "error"
        lenient = await open_page(chromium, ignore_https_errors=True)
        assert await evaluate(lenient, _WS_OPENS, broker.ws_url) == "open"
