"""Per-packet cost of the agent's send path, for people (nothing asserted):
    /work/main/.venv/bin/python -m tests.e2e.packet_figures [VIEWERS ...]

Each viewer is a real agent ICE transport (agent/net/ice.py) nominated against an aioice
peer on loopback, and a real PeerDriver over a peer whose DTLS ran in memory (as the bench
does), so the timed loop is exactly the production one: the fan-out hands each frame to every
driver, the peer stamps and SRTP-protects, the driver's flush sends. Against it, in the same
run, the floor: one SRTP protect and one ``sendto`` per packet in a tight loop. CPU is
``time.process_time`` around pushing frames synchronously (the receivers' reading runs
after, untimed).
"""

from __future__ import annotations

import asyncio
import socket
import sys
import time

import aioice
import aioice.ice

from agent.media.fanout import FanOut
from agent.net import ice as ice_module
from agent.net import udp_batch
from agent.net.driver import PeerDriver
from agent.net.ice import IceServers, IceTransport
from agent.rtc.certificate import Certificate
from agent.rtc.dtls import SrtpProfile
from agent.rtc.srtp import SrtpContext
from agent.tools.bench import connected_peer, encode_test_pattern
from hw.frame import EncodedFrame

PROFILE = SrtpProfile.AEAD_AES_128_GCM
# Wall time of each fan-out push of the last run: the frame handed over -> its last
# packet to the last viewer has left through the socket.
durations: list[float] = []


async def _ice_pair() -> tuple[IceTransport, aioice.Connection]:
    agent = IceTransport(addresses=["127.0.0.1"], servers=IceServers(), on_candidate=lambda c: None)
    viewer = aioice.Connection(ice_controlling=True, components=1)
    candidates = await agent.start_gathering()
    await viewer.gather_candidates()
    agent.set_remote_credentials(viewer.local_username, viewer.local_password)
    viewer.remote_username, viewer.remote_password = agent.local_username, agent.local_password
    for candidate in viewer.local_candidates:
        await agent.add_remote_candidate(candidate.to_sdp())
    await agent.add_remote_candidate(None)
    for text in candidates:
        await viewer.add_remote_candidate(aioice.Candidate.from_sdp(text))
    await viewer.add_remote_candidate(None)
    await asyncio.gather(agent.connect(), viewer.connect())
    return agent, viewer


def _floor(frames: list[EncodedFrame], certificate: Certificate) -> tuple[float, int]:
    """SRTP protect + sendto per packet, nothing else: CPU seconds and packets."""
    from agent.rtc.h264 import packetize

    peer = connected_peer(certificate, PROFILE)
    srtp = peer._srtp
    assert isinstance(srtp, SrtpContext)
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    addr = sink.getsockname()
    header = bytearray(b"\x80\x66" + bytes(10))
    payloads = [packetize(f.nal_units) for f in frames]
    count = 0
    started = time.process_time()
    for frame_payloads in payloads:
        for payload in frame_payloads:
            header[2:4] = (count & 0xFFFF).to_bytes(2, "big")
            sender.sendto(srtp.protect_parts(header, payload), addr)
            count += 1
    elapsed = time.process_time() - started
    sender.close()
    sink.close()
    return elapsed, count


async def _run(
    frames: list[EncodedFrame], viewers: int, certificate: Certificate, *, batch: bool = True
) -> float:
    """CPU seconds to fan ``frames`` out through ``viewers`` real drivers; without ``batch``
    the drivers send one ``sendto`` a datagram, as before agent/net/udp_batch.py."""
    ice_module.batch_sender = udp_batch.batch_sender if batch else (lambda sock, addr: None)
    pairs = [await _ice_pair() for _ in range(viewers)]
    fanout = FanOut(lambda: None)
    drivers = []
    for agent_ice, _ in pairs:
        driver = PeerDriver(connected_peer(certificate, PROFILE), agent_ice, lambda e: None)
        driver._send_now = agent_ice.sender()  # what _run() sets once ICE is connected
        drivers.append(driver)
        fanout.add(driver, 0.0)
    durations.clear()
    started = time.process_time()
    for frame in frames:
        pushed = time.perf_counter()
        fanout.push(frame, frame.pts_90k / 90000)
        durations.append(time.perf_counter() - pushed)
    elapsed = time.process_time() - started
    for agent_ice, viewer in pairs:
        await agent_ice.close()
        await viewer.close()
    return elapsed


async def main(counts: list[int]) -> None:
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]
    certificate = Certificate.generate()
    frames = encode_test_pattern(1280, 720, 30, 4, 2_000_000)
    floor, packets = _floor(frames, certificate)
    floor_us = floor / packets * 1e6
    base = await _run(frames, 0, certificate)
    print(f"{len(frames)} frames, {packets} packets a viewer (720p30, 2 Mbit/s, {PROFILE.name})")
    print(f"floor (protect + sendto):           {floor_us:5.2f} us a packet")
    for count in counts:
        for batch in (False, True):
            loaded = await _run(frames, count, certificate, batch=batch)
            per_packet = (loaded - base) / (count * packets) * 1e6
            how = "sendmmsg a frame " if batch else "sendto a packet  "
            ordered = sorted(durations)
            p50 = ordered[len(ordered) // 2] * 1000
            p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
            print(
                f"{count:4} viewers, {how}: {per_packet:5.2f} us a packet"
                f" ({per_packet / floor_us:4.2f}x floor); frame to last packet sent"
                f" p50 {p50:5.2f} ms, p99 {p99:5.2f} ms"
            )


if __name__ == "__main__":
    asyncio.run(main([int(a) for a in sys.argv[1:]] or [10, 50, 100]))
