"""A small fleet on a real mosquitto (TLS client certificates, the production ACL, client ids
bound to certificate CNs): agents cam-1..cam-N on the test pattern, and one stopped device
whose retained status says offline."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.client import Fleet
from agent.config import load_config
from agent.runtime.app import Agent
from tests.e2e.mqtt_rig import write_agent_config
from tests.infra.mosquitto import MosquittoBroker
from tests.infra.pki import Pki

WAIT = 20.0
OPERATOR = "ops-1"
VIEWER = "viewer-1"


def write_device_config(broker: MosquittoBroker, directory: Path, device: str) -> Path:
    """The config of testsrc device `device` (a small, cheap stream) with its own certificate."""
    directory.mkdir(parents=True, exist_ok=True)
    return write_agent_config(
        broker, directory, device, width=160, height=120, framerate=10, bitrate=200_000
    )


@dataclass
class FleetRig:
    """The broker, the running agents by id, the stopped device's id, and where files are."""

    broker: MosquittoBroker
    agents: dict[str, Agent]
    stopped: str
    directory: Path

    def credentials(self, cn: str) -> dict[str, str]:
        """Fleet(...) keyword arguments for a client whose certificate CN is `cn`."""
        cert, key = self.broker.issue_client(cn)
        return {
            "broker": f"mqtts://localhost:{self.broker.tls_port}",
            "ca": str(self.broker.ca_path),
            "cert": str(cert),
            "key": str(key),
        }

    def fleet(self, cn: str = OPERATOR) -> Fleet:
        return Fleet(**self.credentials(cn))


@contextlib.asynccontextmanager
async def running_fleet(
    broker: MosquittoBroker, directory: Path, devices: Sequence[str], stopped: str
) -> AsyncIterator[FleetRig]:
    """Start `stopped` and stop it again (its retained status then says offline), then run
    `devices` until the block ends."""
    gone = Agent(load_config(write_device_config(broker, directory / stopped, stopped)))
    await gone.start()
    await gone.mqtt.wait_connected(WAIT)
    await gone.stop()
    agents: dict[str, Agent] = {}
    try:
        for device in devices:
            agent = Agent(load_config(write_device_config(broker, directory / device, device)))
            agents[device] = agent
            await agent.start()
        for agent in agents.values():
            await agent.mqtt.wait_connected(WAIT)
        await asyncio.gather(*(wait_for_keyframe(a) for a in agents.values()))
        yield FleetRig(broker, agents, stopped, directory)
    finally:
        for agent in agents.values():
            await agent.stop()


async def wait_for_keyframe(agent: Agent) -> None:
    """Until the agent's GOP cache holds a keyframe (so camera.snapshot can answer)."""
    async with asyncio.timeout(WAIT):
        while not agent.fanout.cached_access_units():
            await asyncio.sleep(0.05)


@pytest.fixture
def fleet_broker(tmp_path: Path, pki: Pki) -> Iterator[MosquittoBroker]:
    """As in production: the broker binds each client id to its certificate CN."""
    with MosquittoBroker(tmp_path / "broker", pki, bind_client_id=True) as broker:
        yield broker


@pytest.fixture
async def fleet_rig(fleet_broker: MosquittoBroker, tmp_path: Path) -> AsyncIterator[FleetRig]:
    async with running_fleet(
        fleet_broker, tmp_path / "devices", ["cam-1", "cam-2", "cam-3"], "cam-9"
    ) as rig:
        yield rig
