"""`edgecam bench control`: the round trip of `stream.get`, over MQTT and over the
datachannel, in the same run against the same agent.

The whole agent (agent.runtime.app, testsrc camera at 320x240) on a real mosquitto with TLS
and client certificates; a controller calls `stream.get` on its rpc topic (aiomqtt, as
`edgecam ctl` does), then an aiortc viewer (a dev dependency) opens the `control` channel
through `webrtc.offer` and calls it there. Calls are paced under the channel's rate limit
(20 per second, PROTOCOL.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiomqtt

from agent.signaling.paho_socket import set_tcp_nodelay
from agent.tools.bench.broker import Broker, BrokerMissing, running_broker
from agent.tools.bench.fanout import aiortc_missing
from agent.tools.bench.options import add_runs, run_scenario, scenario_parser
from agent.tools.bench.report import PlotSpec, Progress, Report, percentile

COLUMNS = ["transport", "p50_ms", "p99_ms", "max_ms", "calls"]
DEVICE = "bench-cam"
CLIENT = "viewer-bench"
MQTT = "mqtt (TLS, QoS 1)"
NAGLE = "mqtt, no TCP_NODELAY"
PACE = 0.055  # under 20 requests per second
WAIT = 20.0


def _agent_config(broker: Broker, directory: Path) -> Path:
    cert, key = broker.issue("device", DEVICE)
    path = directory / "edgecam.toml"
    path.write_text(
        f"""
[device]
id = "{DEVICE}"
state_dir = "{directory / "state"}"

[mqtt]
url = "mqtts://localhost:{broker.port}"
ca = "{broker.ca_path}"
cert = "{cert}"
key = "{key}"

[camera]
source = "testsrc"
width = 320
height = 240
framerate = 30
bitrate = 500000

[webrtc]
ice_addresses = ["127.0.0.1"]

[access]
viewer = ["viewer-*"]
"""
    )
    return path


class MqttRpc:
    """JSON-RPC on the device's rpc/<client-id> topic; replies on .../reply."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.topic = f"edgecam/{DEVICE}/rpc/{CLIENT}"
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}

    async def read(self) -> None:
        async for message in self.client.messages:
            assert isinstance(message.payload, bytes)
            body = json.loads(message.payload)
            future = self._pending.pop(body.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(body)

    async def call(self, method: str, params: dict[str, Any]) -> Any:
        rid = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        body = {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}
        await self.client.publish(self.topic, json.dumps(body), qos=1)
        answer = await asyncio.wait_for(future, WAIT)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]


async def _timed(call: Any, runs: int, progress: Progress, what: str) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(PACE)
    progress.step(f"{what}: {runs} calls")
    return times


async def _datachannel(rpc: MqttRpc, runs: int, progress: Progress) -> list[float]:
    import aioice.ice
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    channel = pc.createDataChannel("control")
    opened = asyncio.Event()
    channel.on("open", opened.set)
    pending: dict[int, asyncio.Future[Any]] = {}
    channel.on("message", lambda data: _resolve(pending, json.loads(data)))
    await pc.setLocalDescription(await pc.createOffer())
    result = await rpc.call("webrtc.offer", {"session": "bench", "sdp": pc.localDescription.sdp})
    await pc.setRemoteDescription(RTCSessionDescription(sdp=result["sdp"], type="answer"))
    await asyncio.wait_for(opened.wait(), WAIT)
    ids = itertools.count(1)

    async def call() -> None:
        rid = next(ids)
        pending[rid] = asyncio.get_running_loop().create_future()
        channel.send(json.dumps({"jsonrpc": "2.0", "id": rid, "method": "stream.get"}))
        await asyncio.wait_for(pending[rid], WAIT)

    try:
        return await _timed(call, runs, progress, "datachannel")
    finally:
        await pc.close()


def _resolve(pending: dict[int, asyncio.Future[Any]], body: dict[str, Any]) -> None:
    future = pending.pop(body.get("id", -1), None)
    if future is not None and not future.done():
        future.set_result(body)


def _row(report: Report, transport: str, times: list[float]) -> None:
    report.add(
        transport=transport,
        p50_ms=percentile(times, 50),
        p99_ms=percentile(times, 99),
        max_ms=max(times) if times else None,
        calls=len(times),
    )


@contextlib.contextmanager
def with_nagle() -> Iterator[None]:
    """Bench-only: the agent's MQTT socket without TCP_NODELAY, as before it set it, to
    show what Nagle's algorithm with delayed ACKs costs a request/response over MQTT."""
    from agent.signaling import paho_socket

    original = paho_socket.set_tcp_nodelay
    paho_socket.set_tcp_nodelay = lambda sock: None
    try:
        yield
    finally:
        paho_socket.set_tcp_nodelay = original


async def _measure(
    report: Report, broker: Broker, directory: Path, runs: int, *, label: str, channel: bool
) -> None:
    nagle = label == NAGLE
    from agent.config import load_config
    from agent.runtime.app import Agent

    missing = aiortc_missing() if channel else "measured once"
    progress = Progress("control", 2 if missing is None else 1)
    agent = Agent(load_config(_agent_config(broker, directory)))
    await agent.start()
    try:
        await agent.mqtt.wait_connected(WAIT)
        tls = broker.client_tls(CLIENT)
        async with aiomqtt.Client(
            "127.0.0.1", broker.port, identifier=CLIENT, tls_context=tls
        ) as client:
            if not nagle:  # as `edgecam ctl` (agent.client) sets it
                set_tcp_nodelay(client._client.socket())
            rpc = MqttRpc(client)
            await client.subscribe(f"{rpc.topic}/reply", qos=1)
            reader = asyncio.create_task(rpc.read())
            try:
                await rpc.call("stream.get", {})  # the first call pays for the connection
                _row(
                    report,
                    label,
                    await _timed(lambda: rpc.call("stream.get", {}), runs, progress, "mqtt"),
                )
                if missing is None:
                    _row(report, "datachannel (aiortc)", await _datachannel(rpc, runs, progress))
                elif channel:
                    report.note(f"datachannel comparison skipped: {missing}")
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
    finally:
        await agent.stop()


async def run(args: argparse.Namespace) -> Report:
    report = Report("control", COLUMNS, plot=PlotSpec("transport", ("p50_ms", "p99_ms"), "ms"))
    with tempfile.TemporaryDirectory(prefix="edgecam-bench-control-") as tmp:
        try:
            # As shipped: broker-config's set_tcp_nodelay, the agent's and ctl's sockets.
            async with running_broker(Path(tmp) / "default", nodelay=True) as broker:
                await _measure(
                    report, broker, Path(tmp) / "default", args.runs, label=MQTT, channel=True
                )
            with with_nagle():
                async with running_broker(Path(tmp) / "nagle") as broker:
                    await _measure(
                        report, broker, Path(tmp) / "nagle", args.runs, label=NAGLE, channel=False
                    )
        except BrokerMissing as exc:
            report.note(f"no MQTT figure: {exc}")
    report.note(
        "no-TCP_NODELAY row: the broker without set_tcp_nodelay, and neither the agent's nor "
        "the controller's socket setting it (a bench-side patch), as before they did: the "
        "difference is Nagle's algorithm meeting delayed ACKs"
    )
    return report


def main(argv: list[str]) -> int:
    parser = scenario_parser("control", __doc__)
    add_runs(parser, 100)
    return run_scenario(parser, run, argv)
