"""`edgecam run` as a real process: SIGTERM closes every session, goes offline, exits 0."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from tests.e2e.mqtt_rig import (
    DEVICE,
    PREFIX,
    RpcClient,
    next_json,
    observer,
    watch,
    write_agent_config,
)
from tests.infra.mosquitto import MosquittoBroker

STATUS = f"{PREFIX}/{DEVICE}/status"


async def test_sigterm_closes_sessions_publishes_offline_and_exits_0(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    config = write_agent_config(broker, tmp_path)
    log = (tmp_path / "agent.log").open("wb")
    agent = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agent.tools.cli",
        "run",
        "--config",
        str(config),
        stdout=log,
        stderr=log,
    )
    try:
        async with observer(broker, STATUS) as obs, RpcClient(broker, "viewer-1") as client:
            await next_json(obs, STATUS, lambda s: s["state"] == "online")
            viewer = await watch(client, "s1")
            try:
                await viewer.wait_frames(10)

                agent.send_signal(signal.SIGTERM)
                closed = await client.wait_state("s1", "closed")
                assert closed["params"]["reason"] == "device shutting down"
                offline = await next_json(obs, STATUS, lambda s: s["state"] == "offline")
                assert offline == {"state": "offline", "device": DEVICE}
                assert await asyncio.wait_for(agent.wait(), 20) == 0
            finally:
                await viewer.close()
        # Retained: a client arriving later still learns the device is offline.
        async with observer(broker, STATUS) as late:
            status = await next_json(late, STATUS, lambda s: True)
            assert status["state"] == "offline"
    finally:
        if agent.returncode is None:
            agent.kill()
            await agent.wait()
        log.close()
