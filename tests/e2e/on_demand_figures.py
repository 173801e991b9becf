"""Figure for the closing note: the agent's CPU with a warm 720p30 test-pattern camera, and
with the camera resting (camera.on_demand, no viewer). No broker is needed: MQTT keeps
retrying in the background, as a device whose broker is away would.

Run: .venv/bin/python -m tests.e2e.on_demand_figures
"""

from __future__ import annotations

import asyncio
import resource
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from agent.config import load_config
from agent.runtime.app import Agent

SECONDS = 10.0


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _share_of_a_core(seconds: float) -> float:
    cpu, wall = _cpu_seconds(), time.monotonic()
    await asyncio.sleep(seconds)
    return (_cpu_seconds() - cpu) / (time.monotonic() - wall)


async def main() -> None:
    directory = Path(tempfile.mkdtemp(prefix="edgecam-on-demand-"))
    config = directory / "edgecam.toml"
    config.write_text(
        f'[device]\nid = "measure"\nstate_dir = "{directory / "state"}"\n'
        '[mqtt]\nurl = "mqtt://127.0.0.1:1"\nallow_insecure = true\n'
        '[camera]\nsource = "testsrc"\nwidth = 1280\nheight = 720\nidle_timeout = 1.0\n'
    )
    agent = Agent(load_config(config))
    await agent.start()
    try:
        await asyncio.sleep(3)  # past the encoder's start-up
        warm = await _share_of_a_core(SECONDS)
        agent.camera.camera = replace(agent.camera.camera, on_demand=True)
        while not agent.camera.resting:
            await asyncio.sleep(0.1)
        resting = await _share_of_a_core(SECONDS)
    finally:
        await agent.stop()
    print(
        f"agent CPU, 720p30 test pattern, no viewer: warm {warm * 100:.1f}% of a core, "
        f"resting (camera.on_demand) {resting * 100:.2f}%"
    )


if __name__ == "__main__":
    asyncio.run(main())
