"""Start-up figures for people (nothing asserted): run inside the loopback namespace,
    bash tests/tools/isolated.sh /work/main/.venv/bin/python -m tests.e2e.speed_figures \
        stack|mqtt|chromium [RUNS]

The media path without MQTT (tests/e2e/stack.py) against aiortc viewers, one at a time.
Each phase is timed on the agent's side, from the moment the offer reaches
``SessionManager.offer``: answer returned, ICE pair nominated, DTLS done (``connected``),
first frame handed to the peer's socket, and the viewer's first decoded frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import statistics
import sys
import time
from collections.abc import Sequence

import aioice.ice

from agent.net.driver import PeerDriver
from agent.net.ice import IceTransport
from tests.e2e.aiortc_viewer import AiortcViewer
from tests.e2e.stack import running_stack

PHASES = ("answer", "ice", "dtls", "first_sent", "first_decoded")


class _Marks:
    def __init__(self) -> None:
        self.at: dict[str, float] = {}

    def mark(self, name: str) -> None:
        self.at.setdefault(name, time.perf_counter())


async def _one_run(stack_manager: object, marks: _Marks, index: int) -> dict[str, float]:
    from agent.net.sessions import SessionManager

    assert isinstance(stack_manager, SessionManager)
    viewer = AiortcViewer()
    try:
        offer = await viewer.offer()
        start = time.perf_counter()
        answer = await stack_manager.offer("viewer", f"s{index}", offer)
        marks.mark("answer")
        await viewer.accept(answer)
        await viewer.wait_frames(1, timeout=20)
        marks.mark("first_decoded")
        return {name: (marks.at[name] - start) * 1000 for name in PHASES if name in marks.at}
    finally:
        await viewer.close()
        with contextlib.suppress(Exception):
            await stack_manager.close("viewer", f"s{index}")


def _instrument(marks: _Marks) -> None:
    """Wrap the agent's phase ends so each run records when it reached them."""
    connect = IceTransport.connect
    send_frame = PeerDriver.send_frame
    dispatch = PeerDriver._dispatch

    async def timed_connect(self: IceTransport) -> None:
        await connect(self)
        marks.mark("ice")

    def timed_send_frame(self: PeerDriver, payloads: Sequence[bytes], pts: int, now: float) -> None:
        send_frame(self, payloads, pts, now)
        marks.mark("first_sent")

    def timed_dispatch(self: PeerDriver, event: object) -> None:
        if type(event).__name__ == "PeerConnected":
            marks.mark("dtls")
        dispatch(self, event)  # type: ignore[arg-type]

    IceTransport.connect = timed_connect  # type: ignore[method-assign]
    PeerDriver.send_frame = timed_send_frame  # type: ignore[method-assign]
    PeerDriver._dispatch = timed_dispatch  # type: ignore[method-assign]


async def main(runs: int) -> None:
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]
    marks = _Marks()
    _instrument(marks)
    results: list[dict[str, float]] = []
    async with running_stack() as stack:
        await stack.fanout.stream_ready.wait()
        for index in range(runs + 1):
            marks.at.clear()
            row = await _one_run(stack.manager, marks, index)
            if index:  # the first run warms imports and caches up
                results.append(row)
    print(f"{runs} runs, ms from the offer reaching the agent (p50 / p90 / max):")
    for name in PHASES:
        values = sorted(r[name] for r in results if name in r)
        if values:
            p90 = values[min(len(values) - 1, int(len(values) * 0.9))]
            print(f"  {name:14} {statistics.median(values):7.1f} {p90:7.1f} {values[-1]:7.1f}")


async def over_mqtt(runs: int) -> None:
    """Offer over a real mosquitto: the agent's own offer -> answer-published time, and the
    viewer's round trip (request published -> answer received)."""
    import tempfile
    from pathlib import Path

    from agent.signaling.rpc_transport import MqttRpcTransport
    from tests.e2e.mqtt_rig import RpcClient, running_agent
    from tests.infra.mosquitto import MosquittoBroker
    from tests.infra.pki import Pki

    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]
    arrived: list[float] = []
    published: list[float] = []
    on_message = MqttRpcTransport.on_message
    publish = MqttRpcTransport._publish_reply

    def timed_on_message(self: MqttRpcTransport, topic: str, payload: bytes) -> None:
        if b"webrtc.offer" in payload:
            arrived.append(time.perf_counter())
        on_message(self, topic, payload)

    def timed_publish(self: MqttRpcTransport, client: str, payload: bytes) -> None:
        publish(self, client, payload)
        if b"v=0" in payload:
            published.append(time.perf_counter())

    MqttRpcTransport.on_message = timed_on_message  # type: ignore[method-assign]
    MqttRpcTransport._publish_reply = timed_publish  # type: ignore[method-assign]
    device: list[float] = []
    round_trip: list[float] = []
    legs: list[tuple[float, float]] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        MosquittoBroker(
            Path(tmp) / "broker", Pki(Path(tmp) / "pki"), bind_client_id=True
        ) as broker,
    ):
        async with running_agent(broker, Path(tmp)) as agent:
            await agent.fanout.stream_ready.wait()
            async with RpcClient(broker, "viewer-1") as client:
                # Browsers set TCP_NODELAY on their WebSocket; paho (under aiomqtt) does not.
                assert client.client is not None
                sock = client.client._client.socket()
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                for index in range(runs + 1):
                    viewer = AiortcViewer()
                    offer = await viewer.offer()
                    start = time.perf_counter()
                    await client.call("webrtc.offer", {"session": f"s{index}", "sdp": offer})
                    end = time.perf_counter()
                    if index:
                        device.append((published[-1] - arrived[-1]) * 1000)
                        round_trip.append((end - start) * 1000)
                        legs.append(((arrived[-1] - start) * 1000, (end - published[-1]) * 1000))
                    await viewer.close()
                    await client.call("webrtc.close", {"session": f"s{index}"})
    print(f"{runs} offers over MQTT, ms (p50 / max):")
    print(
        f"  offer arrived -> answer published  {statistics.median(device):6.1f} {max(device):6.1f}"
    )
    print(f"  request published -> arrived      {statistics.median(a for a, _ in legs):6.1f}")
    print(f"  answer published -> received      {statistics.median(b for _, b in legs):6.1f}")
    p50, worst = statistics.median(round_trip), max(round_trip)
    print(f"  viewer's request -> answer         {p50:6.1f} {worst:6.1f}")


CHROMIUM_PAGE = """<!doctype html><html><body><video id="v" autoplay muted playsinline></video>
<script>
const video = document.getElementById("v");
window.startOffer = async () => {
  const t = window.t = {};
  const pc = new RTCPeerConnection({iceServers: []});
  window.pc = pc;
  pc.addTransceiver("video", {direction: "recvonly"});
  pc.onicecandidate = (e) => window.sendCandidate(e.candidate ? e.candidate.candidate : null);
  pc.oniceconnectionstatechange = () => {
    if (pc.iceConnectionState === "connected") t.ice ??= performance.now();
  };
  pc.onconnectionstatechange = () => {
    if (pc.connectionState === "connected") t.dtls ??= performance.now();
  };
  pc.ontrack = (e) => {
    video.srcObject = new MediaStream([e.track]);
    video.requestVideoFrameCallback(() => { t.first_frame ??= performance.now(); });
  };
  await pc.setLocalDescription(await pc.createOffer());
  t.offer = performance.now();
  return pc.localDescription.sdp;
};
window.acceptAnswer = async (sdp) => {
  window.t.answer_in = performance.now();
  await window.pc.setRemoteDescription({type: "answer", sdp});
  window.t.answer_applied = performance.now();
};
</script></body></html>"""
CHROMIUM_PHASES = ("answer_in", "answer_applied", "ice", "dtls", "first_frame")


async def with_chromium(runs: int) -> None:
    """Chromium's own event times (performance.now() from its offer), the SDP carried by
    this process as tests/e2e/test_chromium.py does (no MQTT)."""
    from tests.infra.browsers import launch_chromium, open_page

    marks = _Marks()
    _instrument(marks)
    page_rows: list[dict[str, float]] = []
    agent_rows: list[dict[str, float]] = []
    async with running_stack() as stack, launch_chromium() as browser:
        await stack.fanout.stream_ready.wait()
        for index in range(runs + 1):
            page = await open_page(browser, html=None)
            session = f"s{index}"

            async def send_candidate(candidate: str | None, session: str = session) -> None:
                await stack.manager.add_candidate("chromium", session, candidate)

            await page.expose_function("sendCandidate", send_candidate)
            await page.set_content(CHROMIUM_PAGE)
            marks.at.clear()
            offer = await page.evaluate("window.startOffer()")
            start = time.perf_counter()
            answer = await stack.manager.offer("chromium", session, offer)
            marks.mark("answer")
            await page.evaluate("(sdp) => window.acceptAnswer(sdp)", answer)
            await page.wait_for_function("window.t.first_frame !== undefined", timeout=20_000)
            times = await page.evaluate("window.t")
            agent_times = {k: (v - start) * 1000 for k, v in marks.at.items()}
            await page.close()
            with contextlib.suppress(Exception):
                await stack.manager.close("chromium", session)
            if index:
                page_rows.append({k: times[k] - times["offer"] for k in CHROMIUM_PHASES})
                agent_rows.append(agent_times)
    print(f"{runs} Chromium runs, ms from its offer (Chromium's clock), p50 / p90 / max:")
    _table(page_rows, CHROMIUM_PHASES)
    print("the same runs on the agent's clock, ms from the offer reaching it:")
    _table(agent_rows, PHASES[:-1])


def _table(rows: list[dict[str, float]], names: Sequence[str]) -> None:
    for name in names:
        values = sorted(r[name] for r in rows if name in r)
        if values:
            p90 = values[min(len(values) - 1, int(len(values) * 0.9))]
            print(f"  {name:14} {statistics.median(values):7.1f} {p90:7.1f} {values[-1]:7.1f}")


if __name__ == "__main__":
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    if sys.argv[1:2] == ["mqtt"]:
        asyncio.run(over_mqtt(count))
    elif sys.argv[1:2] == ["chromium"]:
        asyncio.run(with_chromium(count))
    else:
        asyncio.run(main(count))
