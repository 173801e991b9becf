"""camera.on_demand: the camera rests after idle_timeout with no viewer, and the next offer
wakes it (issue 8, point 4)."""

from __future__ import annotations

import asyncio
import logging

from agent.runtime.app import Agent
from tests.e2e.mqtt_rig import RpcClient, watch
from tests.infra.mosquitto import MosquittoBroker

logger = logging.getLogger(__name__)
WAIT = 20.0


async def _until(condition: object, timeout: float = WAIT) -> None:
    async def poll() -> None:
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poll(), timeout)


async def test_the_camera_rests_without_viewers_and_wakes_for_the_next(
    broker: MosquittoBroker, agent: Agent
) -> None:
    async with RpcClient(broker, "admin-1") as admin, RpcClient(broker, "viewer-1") as client:
        await admin.call("config.set", {"camera": {"on_demand": True, "idle_timeout": 1.0}})
        first = await watch(client, "one")
        await first.wait_frames(10)
        await client.call("webrtc.close", {"session": "one"})
        await first.close()

        await _until(lambda: agent.camera.resting)
        assert agent.camera.source is None  # nothing reads, encodes or packetizes frames
        frames = agent.fanout.stats.frames_in
        assert (await client.call("device.status"))["viewers"] == 0
        assert agent.fanout.stats.frames_in == frames

        loop = asyncio.get_running_loop()
        started = loop.time()
        second = await watch(client, "two")
        try:
            await second.wait_frames(1)
            logger.warning(
                "on demand: offer to first decoded frame %.0f ms", (loop.time() - started) * 1000
            )
            await second.wait_frames(10)
            assert not agent.camera.resting and agent.camera.source is not None
        finally:
            await second.close()
