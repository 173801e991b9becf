"""A real mosquitto for `bench control`, set up as production is: TLS with client
certificates (CN = username = client id), the ACL `edgecam broker-config` writes, and
certificates from the same CA code `edgecam ca` uses. Loopback only, a free port."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from agent.tools.broker_config import acl_text
from agent.tools.broker_process import wait_listening
from agent.tools.pki import Ca, init_ca, issue

HOST = "127.0.0.1"


class BrokerMissing(RuntimeError):
    """mosquitto is not installed."""


@dataclass(frozen=True)
class Broker:
    port: int
    ca: Ca
    ca_path: Path
    directory: Path

    def issue(self, kind: str, name: str) -> tuple[Path, Path]:
        issued = issue(self.ca, kind, name, out_dir=self.directory)  # type: ignore[arg-type]
        return issued.cert_path, issued.key_path

    def client_tls(self, name: str) -> ssl.SSLContext:
        cert, key = self.issue("client", name)
        context = ssl.create_default_context(cafile=str(self.ca_path))
        context.load_cert_chain(cert, key)
        return context


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _mosquitto() -> str:
    path = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(path).exists():
        raise BrokerMissing("mosquitto is not installed: apt-get install mosquitto")
    return path


@contextlib.asynccontextmanager
async def running_broker(directory: Path, *, nodelay: bool = False) -> AsyncIterator[Broker]:
    executable = _mosquitto()
    directory.mkdir(parents=True, exist_ok=True)
    ca = init_ca(directory / "pki")
    ca_path = directory / "pki" / "ca.pem"
    server = issue(ca, "broker", "localhost", out_dir=directory / "pki", sans=["localhost", HOST])
    port = _free_port()
    acl = directory / "edgecam.acl"
    acl.write_text(acl_text("edgecam"))
    conf = directory / "mosquitto.conf"
    conf.write_text(
        "\n".join(
            [
                "user root",  # the bench's temporary files are private to whoever runs it
                "per_listener_settings false",
                "allow_anonymous false",
                "persistence false",
                *(["set_tcp_nodelay true"] if nodelay else []),
                f"acl_file {acl}",
                "log_dest stderr",
                "log_type error",
                f"listener {port} {HOST}",
                f"cafile {ca_path}",
                f"certfile {server.cert_path}",
                f"keyfile {server.key_path}",
                "require_certificate true",
                "use_identity_as_username true",
                "use_username_as_clientid true",
                "",
            ]
        )
    )
    log = (directory / "mosquitto.log").open("wb")
    process = subprocess.Popen(
        [executable, "-c", str(conf)], stdin=subprocess.DEVNULL, stdout=log, stderr=log
    )
    try:
        await wait_listening(HOST, port, process, "mosquitto")
        yield Broker(port, ca, ca_path, directory / "pki")
    finally:
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, 5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
