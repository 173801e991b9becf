"""The documented `webrtc.dtls_role = "auto"` plays: aiortc offers actpass, the agent answers
active (issue 6: it used to fail every offer with -32603)."""

from __future__ import annotations

from pathlib import Path

from agent.config import DtlsRole, load_config
from agent.runtime.app import Agent
from tests.e2e.mqtt_rig import WAIT, RpcClient, watch, write_agent_config
from tests.infra.mosquitto import MosquittoBroker


async def test_dtls_role_auto_answers_an_actpass_offer_and_plays(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    path = write_agent_config(broker, tmp_path)
    path.write_text(path.read_text().replace("[webrtc]\n", '[webrtc]\ndtls_role = "auto"\n'))
    config = load_config(path)
    assert config.webrtc.dtls_role is DtlsRole.AUTO
    agent = Agent(config)
    await agent.start()
    try:
        await agent.mqtt.wait_connected(WAIT)
        async with RpcClient(broker, "viewer-1") as client:
            viewer = await watch(client, "auto")  # aiortc's offer says a=setup:actpass
            try:
                await viewer.wait_frames(10)
                local = viewer.pc.localDescription.sdp
                remote = viewer.pc.remoteDescription.sdp
                assert "a=setup:actpass" in local and "a=setup:active" in remote
            finally:
                await viewer.close()
    finally:
        await agent.stop()
