"""A real coturn TURN server for tests: long-term credentials, UDP + TCP, and TLS over TCP.

Loopback tests use `Coturn(workdir, pki)` on 127.0.0.1 with free ports (loopback peers are
allowed, which production must never do). In a `Topology` pass `host=<its address>` and
`netns=<its namespace>`; the standard ports 3478/5349 are then free for the taking.
"""

from __future__ import annotations

import os
import socket
import ssl
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pytest

from tests.infra.netns import netns_argv, netns_entered
from tests.infra.pki import Pki
from tests.infra.tools import (
    free_port,
    require_tool,
    start_server,
    stop_process,
    tcp_accepts,
)

_STUN_MAGIC = 0x2112A442


def stun_binding_answered(host: str, port: int, timeout: float = 0.2) -> bool:
    """Whether a STUN Binding request over UDP to host:port gets a success response."""
    txid = os.urandom(12)
    request = struct.pack("!HHI", 0x0001, 0, _STUN_MAGIC) + txid
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(request, (host, port))
            data = sock.recv(2048)
        except OSError:
            return False
    return len(data) >= 20 and data[:2] == b"\x01\x01" and data[8:20] == txid


class Coturn:
    """`turnserver` with one static long-term-credential user; a context manager.

    `urls` gives the ICE-server URLs a browser would use (turn: over UDP and TCP, turns:).
    """

    def __init__(
        self,
        workdir: Path,
        pki: Pki,
        *,
        host: str = "127.0.0.1",
        port: int | None = 3478,
        tls_port: int | None = 5349,
        username: str = "edgecam",
        password: str = "turn-secret",
        realm: str = "edgecam.test",
        netns: str | None = None,
        verbose: bool = False,
        start_timeout: float = 10.0,
    ) -> None:
        self.turnserver = require_tool("turnserver", "coturn")
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.pki = pki
        self.host = host
        # free_port(None) asks the namespace pytest runs in: right for loopback tests, and any
        # number is free in a fresh topology namespace.
        self.port = port or free_port(udp_too=True)
        self.tls_port = tls_port or free_port(udp_too=True)
        self.username = username
        self.password = password
        self.realm = realm
        self.netns = netns
        self.start_timeout = start_timeout
        self.conf_path = self.workdir / "turnserver.conf"
        self.log_path = self.workdir / "turnserver.log"
        names = ("localhost", "127.0.0.1") if host == "127.0.0.1" else (host, "localhost")
        self.cert_path, self.key_path = pki.issue(f"turn-{host}-{self.port}", server_names=names)
        self._proc: subprocess.Popen[bytes] | None = None
        lines = [
            f"listening-ip={host}",
            f"relay-ip={host}",
            f"listening-port={self.port}",
            f"tls-listening-port={self.tls_port}",
            "lt-cred-mech",
            "fingerprint",
            f"user={username}:{password}",
            f"realm={realm}",
            f"cert={self.cert_path}",
            f"pkey={self.key_path}",
            "no-tlsv1",
            "no-tlsv1_1",
            "no-cli",
            "no-rfc5780",
            "no-multicast-peers",
            "allow-loopback-peers",
            "no-software-attribute",
            f"userdb={self.workdir / 'turndb'}",
            f"pidfile={self.workdir / 'turnserver.pid'}",
            "log-file=stdout",
            "simple-log",
            "new-log-timestamp",
        ]
        if verbose:
            lines.append("verbose")
        self.conf_path.write_text("\n".join(lines) + "\n")

    @property
    def urls(self) -> list[str]:
        return [
            f"turn:{self.host}:{self.port}?transport=udp",
            f"turn:{self.host}:{self.port}?transport=tcp",
            f"turns:{self.host}:{self.tls_port}?transport=tcp",
        ]

    def client_ssl_context(self) -> ssl.SSLContext:
        """For TURN over TLS (aioice `turn_ssl=`): trusts the test CA, checks the host name."""
        return ssl.create_default_context(cafile=str(self.pki.ca_path))

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> Coturn:
        """Start turnserver; returns once UDP answers STUN and both TCP ports accept."""
        if self.running:
            return self

        def ready() -> bool:
            with netns_entered(self.netns):
                return (
                    stun_binding_answered(self.host, self.port)
                    and tcp_accepts(self.host, self.port)
                    and tcp_accepts(self.host, self.tls_port)
                )

        self._proc = start_server(
            netns_argv(self.netns, [self.turnserver, "-c", str(self.conf_path)]),
            self.log_path,
            ready=ready,
            timeout=self.start_timeout,
            what="turnserver",
        )
        return self

    def stop(self) -> None:
        if self._proc is not None:
            stop_process(self._proc)
            self._proc = None

    def __enter__(self) -> Coturn:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@pytest.fixture
def coturn_server(tmp_path: Path, pki: Pki) -> Iterator[Coturn]:
    """A running TURN server on 127.0.0.1 (free ports); stopped after the test."""
    with Coturn(tmp_path / "coturn", pki, port=None, tls_port=None) as server:
        yield server
