"""Idle footprint of a real ``edgecam run`` process, for people (nothing asserted):
    bash tests/tools/isolated.sh /work/main/.venv/bin/python -m tests.e2e.footprint_figures \\
        [SECONDS] [viewers]

The agent runs as its own process on a real mosquitto (tests/e2e/mqtt_rig.py's config), once
with ``testsrc`` (PyAV + libx264, 320x240) and once with ``picamera2`` on this machine where
libcamera is absent (the agent stays up, camera "unavailable": everything but the camera
stack, and no PyAV). After it has settled: RSS, threads, fds, and the CPU it used over
SECONDS with no viewer (utime + stime from /proc). With ``viewers``, the testsrc agent also
gets 8 aiortc viewers (the default limit) (this process) and the RSS per viewer is reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import aioice.ice

from tests.e2e.mqtt_rig import RpcClient, watch, write_agent_config
from tests.infra.mosquitto import MosquittoBroker
from tests.infra.pki import Pki

TICKS = os.sysconf("SC_CLK_TCK")


def _status(pid: int) -> dict[str, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return {
        "rss_mb": int(fields["VmRSS"].split()[0]) / 1024,
        "threads": int(fields["Threads"]),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "cpu_s": (int(stat[11]) + int(stat[12])) / TICKS,
    }


@contextlib.asynccontextmanager
async def _agent(broker: MosquittoBroker, directory: Path, source: str) -> AsyncIterator[int]:
    config = write_agent_config(broker, directory)
    text = config.read_text().replace('source = "testsrc"', f'source = "{source}"')
    config.write_text(text.replace("interval = 1.0", "interval = 30.0"))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agent.tools.cli",
        "run",
        "--config",
        str(config),
        "--log-level",
        "warning",
    )
    try:
        yield process.pid
    finally:
        process.terminate()
        await process.wait()


async def _measure(
    broker: MosquittoBroker, directory: Path, source: str, seconds: float, viewers: int
) -> None:
    async with _agent(broker, directory, source) as pid:
        await asyncio.sleep(8)  # start-up, MQTT connect, the camera's first frames
        before = _status(pid)
        await asyncio.sleep(seconds)
        after = _status(pid)
        cpu = (after["cpu_s"] - before["cpu_s"]) / seconds * 100
        print(
            f"{source:9} idle: RSS {after['rss_mb']:5.1f} MB, {after['threads']:.0f} threads, "
            f"{after['fds']:.0f} fds, CPU {cpu:4.2f}% of a core over {seconds:g} s"
        )
        if not viewers:
            return
        async with contextlib.AsyncExitStack() as stack:
            watching = []
            for index in range(viewers):  # a client holds at most 2 sessions: one each
                client = await stack.enter_async_context(RpcClient(broker, f"viewer-{index}"))
                watching.append(await watch(client, "s"))
            await asyncio.sleep(5)
            loaded = _status(pid)
            per_viewer = (loaded["rss_mb"] - after["rss_mb"]) / viewers
            print(
                f"{source:9} {viewers} viewers: RSS {loaded['rss_mb']:5.1f} MB "
                f"(+{per_viewer:.2f} MB a viewer), {loaded['threads']:.0f} threads, "
                f"{loaded['fds']:.0f} fds"
            )
            for viewer in watching:
                await viewer.close()


async def main(seconds: float, viewers: int) -> None:
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with MosquittoBroker(root / "broker", Pki(root / "pki"), bind_client_id=True) as broker:
            for source in ("picamera2", "testsrc"):
                directory = root / source
                directory.mkdir()
                await _measure(
                    broker, directory, source, seconds, viewers if source == "testsrc" else 0
                )


if __name__ == "__main__":
    asyncio.run(
        main(
            float(sys.argv[1]) if len(sys.argv) > 1 else 20.0,
            8 if "viewers" in sys.argv[2:] else 0,  # the default webrtc.max_viewers
        )
    )
