"""A userspace netem + tbf for a Topology's router: delay, random loss and a bottleneck.

This machine's kernel has no `sch_netem` (tc answers "Specified qdisc kind is unknown"), so
the router forwards the shaped hosts' IPv4 frames itself: the kernel's own forwarding
between them is blackholed (`Topology.isolate`), and one thread in the router namespace
reads frames from each host's router interface with AF_PACKET sockets, applies the path
towards the destination host, rewrites the Ethernet addresses as a router does, and writes
them to the destination's interface.

A path (towards one host) is: random loss, then a FIFO bottleneck at `rate_kbit` whose
queue holds at most `queue_ms` of traffic (tail drop: what tbf with `latency` does), then a
fixed one-way delay. Paths not set are unshaped (forwarded at once).
"""

from __future__ import annotations

import contextlib
import heapq
import json
import random
import select
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field

from tests.infra.netns import Host, Topology, netns_entered

_ETH_P_ALL = 0x0003
_PACKET_OUTGOING = 4
_IPV4 = b"\x08\x00"


@dataclass
class Path:
    delay: float = 0.0  # seconds, one way
    loss: float = 0.0  # probability
    rate_bps: float | None = None  # None: no bottleneck
    queue: float = 0.3  # seconds of traffic the bottleneck holds
    busy_until: float = 0.0  # when the bottleneck has sent what it holds
    dropped: int = 0
    forwarded: int = 0


@dataclass
class _Port:
    host: Host
    interface: str
    sock: socket.socket
    host_mac: bytes
    router_mac: bytes
    path: Path = field(default_factory=Path)


def _mac(netns: str, interface: str) -> bytes:
    out = subprocess.run(
        ["ip", "-n", netns, "-j", "link", "show", interface],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return bytes.fromhex(json.loads(out)[0]["address"].replace(":", ""))


def _zero_udp_checksum(frame: bytearray) -> None:
    # veth hands over UDP packets with the checksum left to offload; 0 means "none" in IPv4.
    ihl = (frame[14] & 0x0F) * 4
    if frame[23] == 17 and len(frame) >= 14 + ihl + 8:
        frame[14 + ihl + 6 : 14 + ihl + 8] = b"\x00\x00"


class LinkEmulator:
    """Forwards IPv4 between `hosts` through the router, shaping each path; a context
    manager (the thread runs between enter and exit)."""

    def __init__(self, topo: Topology, hosts: list[Host], seed: int = 11) -> None:
        self._topo = topo
        self._hosts = hosts
        self._random = random.Random(seed)
        self._ports: dict[str, _Port] = {}  # by destination address
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    def set_path(
        self,
        to: Host,
        *,
        delay_ms: float = 0.0,
        loss_percent: float = 0.0,
        rate_kbit: float | None = None,
        queue_ms: float = 300.0,
    ) -> None:
        """Shape the path from the router to host `to` (replacing what was set)."""
        with self._lock:
            port = self._ports[to.address]
            port.path = Path(
                delay=delay_ms / 1000,
                loss=loss_percent / 100,
                rate_bps=None if rate_kbit is None else rate_kbit * 1000,
                queue=queue_ms / 1000,
            )

    def path(self, to: Host) -> Path:
        return self._ports[to.address].path

    def __enter__(self) -> LinkEmulator:
        for index, a in enumerate(self._hosts):
            for b in self._hosts[index + 1 :]:
                self._topo.isolate(a, b)
        self._thread = threading.Thread(target=self._run, name="linkemu", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("link emulator did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _open_ports(self) -> None:
        names = list(self._topo.hosts)
        for host in self._hosts:
            interface = f"h{names.index(host.name) + 1}"
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(_ETH_P_ALL))
            sock.bind((interface, 0))
            sock.setblocking(False)
            self._ports[host.address] = _Port(
                host,
                interface,
                sock,
                _mac(host.netns, "eth0"),
                _mac(self._topo.router, interface),
            )

    def _run(self) -> None:
        with netns_entered(self._topo.router):
            self._open_ports()
        self._ready.set()
        pending: list[tuple[float, int, bytes, _Port]] = []
        order = 0
        by_sock = {port.sock: port for port in self._ports.values()}
        try:
            while not self._stop.is_set():
                timeout = 0.05 if not pending else max(0.0, pending[0][0] - time.monotonic())
                readable, _, _ = select.select(list(by_sock), [], [], min(timeout, 0.05))
                for sock in readable:
                    for frame in self._read(sock):
                        routed = self._route(frame)
                        if routed is not None:
                            order += 1
                            heapq.heappush(pending, (routed[0], order, routed[1], routed[2]))
                now = time.monotonic()
                while pending and pending[0][0] <= now:
                    _, _, frame, port = heapq.heappop(pending)
                    with contextlib.suppress(OSError):
                        port.sock.send(frame)
        finally:
            for port in self._ports.values():
                port.sock.close()

    @staticmethod
    def _read(sock: socket.socket) -> list[bytes]:
        frames: list[bytes] = []
        while True:
            try:
                data, address = sock.recvfrom(65535)
            except BlockingIOError:
                return frames
            if address[2] != _PACKET_OUTGOING:
                frames.append(data)

    def _route(self, data: bytes) -> tuple[float, bytes, _Port] | None:
        if len(data) < 34 or data[12:14] != _IPV4:
            return None
        port = self._ports.get(socket.inet_ntoa(data[30:34]))
        if port is None:
            return None
        frame = bytearray(data)
        frame[0:6], frame[6:12] = port.host_mac, port.router_mac
        _zero_udp_checksum(frame)
        now = time.monotonic()
        with self._lock:
            path = port.path
            if path.loss and self._random.random() < path.loss:
                path.dropped += 1
                return None
            leave = now
            if path.rate_bps is not None:
                start = max(now, path.busy_until)
                if start - now > path.queue:
                    path.dropped += 1
                    return None
                path.busy_until = leave = start + len(frame) * 8 / path.rate_bps
            path.forwarded += 1
        return leave + path.delay, bytes(frame), port
