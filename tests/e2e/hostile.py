"""Tools of the hostile-input tests: a viewer that times its frames, a stranger's datagrams,
and the process figures (RSS, fds, threads) a flood or a soak is judged by."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import socket
import time
from typing import Any

from aioice import stun
from OpenSSL import SSL

from tests.e2e.aiortc_viewer import AiortcViewer
from tests.e2e.mqtt_rig import RpcClient


class TimedViewer(AiortcViewer):
    """An aiortc viewer that keeps the arrival time of every decoded frame."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.arrivals: list[float] = []

    def _on_track(self, track: Any) -> None:  # registered by AiortcViewer.__init__
        super()._on_track(_TimedTrack(track, self.arrivals))

    def longest_gap(self, since: float) -> float:
        """The longest time without a frame from ``since`` (time.monotonic) until now."""
        marks = [since, *(t for t in self.arrivals if t > since), time.monotonic()]
        return max(b - a for a, b in itertools.pairwise(marks))


class _TimedTrack:
    def __init__(self, track: Any, arrivals: list[float]) -> None:
        self._track = track
        self._arrivals = arrivals

    async def recv(self) -> Any:
        frame = await self._track.recv()
        self._arrivals.append(time.monotonic())
        return frame


async def watch_timed(client: RpcClient, session: str) -> TimedViewer:
    """Offer over MQTT, apply the answer, wait for 'connected' and a first frame."""
    viewer = TimedViewer()
    result = await client.call("webrtc.offer", {"session": session, "sdp": await viewer.offer()})
    await viewer.accept(result["sdp"])
    await client.wait_state(session, "connected")
    await viewer.wait_frames(1)
    return viewer


def answer_ports(sdp: str) -> list[tuple[str, int]]:
    """The agent's UDP host candidates in an answer (what a port scan would find)."""
    found = re.findall(r"a=candidate:\S+ 1 udp \d+ (\S+) (\d+) typ host", sdp)
    return [(host, int(port)) for host, port in found]


def ice_credentials(sdp: str) -> tuple[str, str]:
    ufrag = re.search(r"a=ice-ufrag:(\S+)", sdp)
    pwd = re.search(r"a=ice-pwd:(\S+)", sdp)
    assert ufrag and pwd, "no ICE credentials in the SDP"
    return ufrag.group(1), pwd.group(1)


def binding_request(username: str | None = None, password: str | None = None) -> stun.Message:
    """A STUN Binding request as an ICE controlling agent sends it (RFC 8445 section 7.1)."""
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    if username is not None:
        request.attributes["USERNAME"] = username
        request.attributes["PRIORITY"] = 1853824767
        request.attributes["ICE-CONTROLLING"] = 1
    if password is not None:
        request.add_message_integrity(password.encode())
    request.add_fingerprint()
    return request


# A DTLS 1.2 record, epoch 0: fatal handshake_failure alert (15 bytes, no keys needed).
DTLS_FATAL_ALERT = bytes.fromhex("15fefd000000000000000000020228")


def dtls_client_hello() -> bytes:
    """A real DTLS ClientHello from an unrelated OpenSSL client."""
    conn = SSL.Connection(SSL.Context(SSL.DTLS_METHOD), None)
    conn.set_connect_state()
    with contextlib.suppress(SSL.WantReadError):
        conn.do_handshake()
    return conn.bio_read(65535)


def stranger_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    return sock


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def thread_count() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    raise AssertionError("no Threads line in /proc/self/status")
