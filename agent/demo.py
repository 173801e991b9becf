"""`edgecam demo`: broker, agent on the test pattern and the browser viewer, on 127.0.0.1.

Nothing to set up: the broker is embedded (amqtt; plain MQTT and WebSocket on loopback only,
anonymous, so this is for trying the product, never for a deployment), the agent's state
lives in a temporary directory, and the printed URL plays the stream with no further clicks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlencode

from agent.app import Agent
from agent.config import (
    AccessConfig,
    CameraConfig,
    Config,
    DeviceConfig,
    MqttConfig,
    TelemetryConfig,
    WebrtcConfig,
)
from agent.net.ice import usable_host_addresses
from agent.web.server import ViewerServer

logger = logging.getLogger(__name__)

DEVICE_ID = "demo-cam"


@dataclass(frozen=True)
class DemoOptions:
    host: str = "127.0.0.1"
    http_port: int = 8080
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
            source="testsrc",
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


async def run_demo(options: DemoOptions, stop: asyncio.Event) -> None:
    """Start everything, print the viewer URL, run until ``stop`` is set."""
    with tempfile.TemporaryDirectory(prefix="edgecam-demo-") as state_dir:
        async with _embedded_broker(options.host) as (mqtt_port, ws_port):
            agent = Agent(demo_config(options, mqtt_port, state_dir))
            await agent.start()
            viewer = ViewerServer(host=options.host, port=options.http_port)
            try:
                await viewer.start()
            except OSError:
                viewer = ViewerServer(host=options.host, port=0)
                await viewer.start()
            query = urlencode(
                {"broker": f"ws://{options.host}:{ws_port}", "device": DEVICE_ID, "autoplay": "1"}
            )
            print(f"edgecam demo is running: open {viewer.url}?{query}", flush=True)
            print("press Ctrl-C to stop", flush=True)
            try:
                await stop.wait()
            finally:
                await agent.stop()
                await viewer.stop()
