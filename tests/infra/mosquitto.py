"""A real mosquitto broker for tests, configured like production (config/mosquitto.example.conf).

Listeners:
- MQTT over TLS on `host:tls_port`, client certificate required, its CN becomes the username
  (devices and tools connect here);
- MQTT over WebSockets on `host:ws_port` (plain `ws://`, or `wss://` with `ws_tls=True`),
  username/password from a password file (browser viewers connect here).
The ACL is the one PROTOCOL.md needs (see `ACL_LINES`). `restart()` reuses the same ports, so a
client can reconnect to the same URL after a broker crash (`kill()`).
"""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator, Mapping
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

DEFAULT_VIEWERS: Mapping[str, str] = {"viewer": "viewer-secret"}


def acl_lines(prefix: str = "edgecam") -> list[str]:
    """ACL `pattern` lines (they apply to every user) for topic prefix `prefix`."""
    return [
        f"pattern readwrite {prefix}/%u/#",
        f"pattern write {prefix}/+/rpc/%c",
        f"pattern read {prefix}/+/rpc/%c/reply",
        f"pattern read {prefix}/+/status",
        f"pattern read {prefix}/+/events",
        f"pattern read {prefix}/+/telemetry",
    ]


class MosquittoBroker:
    """mosquitto with a certificate-authenticated TLS listener and a password WebSockets one.

    Use as a context manager (starts on enter, stops on exit) or call `start()`/`stop()`.
    `bind_client_id=True` makes the broker replace each client id with the username (the
    certificate CN or password-file name), as config/mosquitto.example.conf does: then the
    `rpc/C` topics and the agent's client-id roles cannot be claimed by another client.
    `netns` runs the broker inside that network namespace (then `host` must be one of its
    addresses).
    """

    def __init__(
        self,
        workdir: Path,
        pki: Pki,
        *,
        host: str = "127.0.0.1",
        tls_port: int | None = None,
        ws_port: int | None = None,
        ws_tls: bool = False,
        viewers: Mapping[str, str] = DEFAULT_VIEWERS,
        topic_prefix: str = "edgecam",
        bind_client_id: bool = False,
        netns: str | None = None,
        start_timeout: float = 10.0,
    ) -> None:
        self.mosquitto = require_tool("mosquitto", "mosquitto")
        self.mosquitto_passwd = require_tool("mosquitto_passwd", "mosquitto")
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.pki = pki
        self.host = host
        self.tls_port = tls_port or free_port()
        self.ws_port = ws_port or free_port()
        self.ws_tls = ws_tls
        self.viewers = dict(viewers)
        self.topic_prefix = topic_prefix
        self.bind_client_id = bind_client_id
        self.netns = netns
        self.start_timeout = start_timeout
        self.conf_path = self.workdir / "mosquitto.conf"
        self.acl_path = self.workdir / "mosquitto.acl"
        self.passwd_path = self.workdir / "mosquitto.passwd"
        self.log_path = self.workdir / "mosquitto.log"
        names = ("localhost", "127.0.0.1") if host == "127.0.0.1" else (host, "localhost")
        self.cert_path, self.key_path = pki.issue(
            f"mosquitto-{host}-{self.tls_port}", server_names=names
        )
        self._proc: subprocess.Popen[bytes] | None = None
        self._write_files()

    @property
    def ca_path(self) -> Path:
        return self.pki.ca_path

    @property
    def ws_url(self) -> str:
        """The URL browsers (mqtt.js) connect to."""
        scheme = "wss" if self.ws_tls else "ws"
        return f"{scheme}://{self.host}:{self.ws_port}/"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _write_files(self) -> None:
        self.acl_path.write_text("\n".join(acl_lines(self.topic_prefix)) + "\n")
        self.passwd_path.write_text("")
        self.passwd_path.chmod(0o600)
        for user, password in self.viewers.items():
            subprocess.run(
                [self.mosquitto_passwd, "-b", str(self.passwd_path), user, password],
                check=True,
                capture_output=True,
            )
        tls_files = [
            f"cafile {self.pki.ca_path}",
            f"certfile {self.cert_path}",
            f"keyfile {self.key_path}",
        ]
        # A listener option: it has to follow each `listener` line.
        bind = f"use_username_as_clientid {'true' if self.bind_client_id else 'false'}"
        lines = [
            # Stay root: pytest's tmp directories are 0700, so user mosquitto could not read
            # the files. Production drops privileges (see config/mosquitto.example.conf).
            "user root",
            "per_listener_settings false",
            "allow_anonymous false",
            "persistence false",
            # As broker-config writes it: replies and notifications are small writes in a row.
            "set_tcp_nodelay true",
            f"password_file {self.passwd_path}",
            f"acl_file {self.acl_path}",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "log_type subscribe",
            "connection_messages true",
            "log_timestamp_format %H:%M:%S",
            "",
            f"listener {self.tls_port} {self.host}",
            "protocol mqtt",
            *tls_files,
            "require_certificate true",
            "use_identity_as_username true",
            bind,
            "",
            f"listener {self.ws_port} {self.host}",
            "protocol websockets",
            "socket_domain ipv4",
            bind,
            *(tls_files if self.ws_tls else []),
        ]
        self.conf_path.write_text("\n".join(lines) + "\n")

    def start(self) -> MosquittoBroker:
        """Start the broker and return once both listeners accept connections."""
        if self.running:
            return self

        def ready() -> bool:
            with netns_entered(self.netns):
                return tcp_accepts(self.host, self.tls_port) and tcp_accepts(
                    self.host, self.ws_port
                )

        self._proc = start_server(
            netns_argv(self.netns, [self.mosquitto, "-c", str(self.conf_path)]),
            self.log_path,
            ready=ready,
            timeout=self.start_timeout,
            what="mosquitto",
        )
        return self

    def _reap(self, proc: subprocess.Popen[bytes]) -> None:
        proc.wait()
        self._proc = None

    def stop(self) -> None:
        """Graceful stop (SIGTERM); a no-op when not running."""
        if self._proc is not None:
            proc = self._proc
            stop_process(proc)
            self._reap(proc)

    def kill(self) -> None:
        """Crash the broker (SIGKILL): clients see their connection drop without DISCONNECT."""
        if self._proc is not None:
            proc = self._proc
            if proc.poll() is None:
                proc.kill()
            self._reap(proc)

    def restart(self) -> MosquittoBroker:
        """Stop if running, then start again on the same ports."""
        self.stop()
        return self.start()

    def issue_client(self, cn: str) -> tuple[Path, Path]:
        """A client certificate with CN `cn` (the MQTT username on the TLS listener)."""
        return self.pki.issue(cn, server_names=(), client=True)

    def client_tls_context(self, cn: str | None) -> ssl.SSLContext:
        """An SSLContext that trusts the test CA and presents a certificate for `cn` (None: none).

        Works with paho (`client.tls_set_context(ctx)`) and aiomqtt (`tls_context=ctx`).
        """
        ctx = ssl.create_default_context(cafile=str(self.pki.ca_path))
        if cn is not None:
            cert, key = self.issue_client(cn)
            ctx.load_cert_chain(cert, key)
        return ctx

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def __enter__(self) -> MosquittoBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@pytest.fixture
def mosquitto_broker(tmp_path: Path, pki: Pki) -> Iterator[MosquittoBroker]:
    """A running broker on 127.0.0.1 (free ports, plain ws); stopped after the test."""
    with MosquittoBroker(tmp_path / "mosquitto", pki) as broker:
        yield broker
