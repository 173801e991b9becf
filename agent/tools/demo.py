"""`edgecam demo`: broker, agent on the test pattern and the browser viewer, on 127.0.0.1.

Nothing to set up: the broker is mosquitto when it is installed, else the embedded amqtt
(plain MQTT and WebSocket on loopback only, anonymous: for trying the product, never for a
deployment); the agent's state lives in a temporary directory, and the printed URL plays the
stream with no further clicks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from agent.config import (
    AccessConfig,
    CameraConfig,
    CameraSource,
    Config,
    DeviceConfig,
    MqttConfig,
    TelemetryConfig,
    WebrtcConfig,
)
from agent.net.ice import usable_host_addresses
from agent.runtime.app import Agent
from agent.tools.broker_process import wait_listening
from agent.web.server import VENDOR_MQTT, WEB_ROOT, ViewerServer, viewer_url

logger = logging.getLogger(__name__)

DEVICE_ID = "demo-cam"
DEFAULT_HTTP_PORT = 8080


@dataclass(frozen=True)
class DemoOptions:
    host: str = "127.0.0.1"
    http_port: int | None = None  # None: 8080, or a free port if 8080 is taken
    width: int = 1280
    height: int = 720
    framerate: float = 30.0
    bitrate: int = 2_000_000


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def _local_broker(host: str, workdir: str) -> AsyncIterator[tuple[int, int]]:
    mosquitto = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if mosquitto is None:
        async with _embedded_broker(host) as ports:
            yield ports
        return
    tcp_port, ws_port = _free_port(host), _free_port(host)
    conf = Path(workdir) / "mosquitto.conf"
    conf.write_text(
        "persistence false\n"
        "log_dest stderr\n"
        "log_type error\n"
        "allow_anonymous true\n"
        f"listener {tcp_port} {host}\n"
        f"listener {ws_port} {host}\n"
        "protocol websockets\n"
        "socket_domain ipv4\n"
    )
    proc = subprocess.Popen([mosquitto, "-c", str(conf)], stdin=subprocess.DEVNULL)
    try:
        try:
            await wait_listening(host, tcp_port, proc, "the demo broker (mosquitto)")
        except RuntimeError as exc:
            raise SystemExit(str(exc)) from None
        yield tcp_port, ws_port
    finally:
        proc.terminate()
        try:
            await asyncio.to_thread(proc.wait, 5)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.asynccontextmanager
async def _embedded_broker(host: str) -> AsyncIterator[tuple[int, int]]:
    try:
        from amqtt.broker import Broker
    except ImportError:
        raise SystemExit(
            "edgecam demo needs the embedded broker amqtt: run `make demo` (installs it) "
            "or `pip install 'edgecam[demo]'`"
        ) from None
    tcp_port, ws_port = _free_port(host), _free_port(host)
    broker = Broker(
        {
            "listeners": {
                "default": {"type": "tcp", "bind": f"{host}:{tcp_port}"},
                "ws": {"type": "ws", "bind": f"{host}:{ws_port}"},
            },
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
    )
    await broker.start()
    try:
        yield tcp_port, ws_port
    finally:
        await broker.shutdown()


def demo_config(options: DemoOptions, mqtt_port: int, state_dir: str) -> Config:
    return Config(
        device=DeviceConfig(id=DEVICE_ID, state_dir=state_dir),
        mqtt=MqttConfig(
            url=f"mqtt://{options.host}:{mqtt_port}",
            allow_insecure=True,
            client_id=DEVICE_ID,
        ),
        camera=CameraConfig(
            source=CameraSource.TESTSRC,
            width=options.width,
            height=options.height,
            framerate=options.framerate,
            bitrate=options.bitrate,
        ),
        # Loopback for a browser on this machine, every other interface for one on the LAN.
        webrtc=WebrtcConfig(ice_addresses=("127.0.0.1", *usable_host_addresses())),
        access=AccessConfig(admin=("*",)),
        telemetry=TelemetryConfig(interval=5.0),
    )


def missing_web_asset() -> str | None:
    """Why the viewer page could not work (its vendored mqtt.js absent), or None. Checked
    before anything starts: a page that loads but never connects explains nothing."""
    path = WEB_ROOT / VENDOR_MQTT
    if path.is_file():
        return None
    return f"{path} is missing: run `make web-deps` (or install a wheel that carries it)"


async def run_demo(options: DemoOptions, stop: asyncio.Event) -> None:
    """Start everything, print the viewer URL, run until ``stop`` is set."""
    with tempfile.TemporaryDirectory(prefix="edgecam-demo-") as state_dir:
        async with _local_broker(options.host, state_dir) as (mqtt_port, ws_port):
            agent = Agent(demo_config(options, mqtt_port, state_dir))
            await agent.start()
            viewer = ViewerServer(host=options.host, port=options.http_port or DEFAULT_HTTP_PORT)
            try:
                await viewer.start()
            except OSError:
                if options.http_port is not None:
                    await agent.stop()
                    raise  # an explicit port that is taken is the user's to change
                viewer = ViewerServer(host=options.host, port=0)
                await viewer.start()
            url = viewer_url(viewer.url, broker=f"ws://{options.host}:{ws_port}", device=DEVICE_ID)
            print(f"edgecam demo is running: open {url}", flush=True)
            print("press Ctrl-C to stop", flush=True)
            try:
                await stop.wait()
            finally:
                await agent.stop()
                await viewer.stop()
    print("edgecam demo stopped", flush=True)
