"""`edgecam broker-config`: a mosquitto configuration, ACL and password file for the fleet,
from the CA directory `edgecam ca` keeps.

Accounts and roles agree by construction: mosquitto replaces every client id with the
username (`use_username_as_clientid`), which is the certificate CN on the TLS listener and the
password-file name on the WSS one, and the agent gives roles by client-id pattern
([access] of config/edgecam.example.toml: viewer-*, ops-*, admin-*). So a viewer account is
refused here unless its name matches one of those patterns (`viewer-alice` watches,
`ops-bob` operates), and `edgecam ca issue device` refuses device ids that match them.
"""

from __future__ import annotations

import base64
import fnmatch
import grp
import hashlib
import ipaddress
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from agent.config.store import write_atomically
from agent.tools.pki import CA_CERT, CLIENT_PATTERNS, PkiError, check_name

CONF: Final = "mosquitto.conf"
ACL: Final = "edgecam.acl"
PASSWD: Final = "edgecam.passwd"
# mosquitto 2.0's defaults for $7$ (PBKDF2-HMAC-SHA512): 12 bytes of salt, 101 rounds.
PBKDF2_ITERATIONS: Final = 101
PBKDF2_SALT_BYTES: Final = 12


@dataclass(frozen=True)
class Viewer:
    """A password account for the WSS listener (browsers)."""

    name: str
    password: str

    @classmethod
    def parse(cls, text: str) -> Viewer:
        """NAME:PASSWORD (the password may contain ':'); ValueError naming the problem."""
        name, sep, password = text.partition(":")
        if not sep or not password:
            raise ValueError(f"{name!r}: expected NAME:PASSWORD")
        try:
            check_name("client", name)
        except PkiError as exc:
            raise ValueError(str(exc)) from None
        if not any(fnmatch.fnmatchcase(name, p) for p in CLIENT_PATTERNS):
            patterns = ", ".join(CLIENT_PATTERNS)
            raise ValueError(
                f"viewer {name!r} would have no role: the [access] patterns are {patterns} "
                "(e.g. viewer-alice)"
            )
        return cls(name, password)


@dataclass(frozen=True)
class BrokerOptions:
    """What `edgecam broker-config` was asked for."""

    ca_dir: Path
    out: Path
    tls_port: int = 8883
    wss_port: int = 8884
    viewers: Sequence[Viewer] = ()
    broker: str | None = None
    bind: str | None = None
    run_as: str | None = None
    topic_prefix: str = "edgecam"


def pbkdf2_line(name: str, password: str, salt: bytes | None = None) -> str:
    """A password-file line in mosquitto's $7$ format (what `mosquitto_passwd` writes)."""
    salt = secrets.token_bytes(PBKDF2_SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS)
    b64 = base64.b64encode
    return f"{name}:$7${PBKDF2_ITERATIONS}${b64(salt).decode()}${b64(digest).decode()}"


def mosquitto_passwd_line(tool: str, name: str, password: str) -> str:
    """The line `mosquitto_passwd -b` writes for this account."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "passwd"
        path.touch(mode=0o600)
        subprocess.run([tool, "-b", str(path), name, password], check=True, capture_output=True)
        return path.read_text().strip()


def password_lines(viewers: Sequence[Viewer], tool: str | None) -> list[str]:
    """Hash with mosquitto_passwd when it is installed (`tool`), else in Python, same format."""
    if tool is None:
        return [pbkdf2_line(v.name, v.password) for v in viewers]
    return [mosquitto_passwd_line(tool, v.name, v.password) for v in viewers]


def acl_text(prefix: str) -> str:
    """Devices pinned to P/<cn>/#; every client to its own rpc/<client-id> topics."""
    return "\n".join(
        [
            "# Written by edgecam broker-config. %u: username (certificate CN or password-file",
            "# name); %c: client id, equal to %u with use_username_as_clientid.",
            "# A device reads and writes only its own subtree.",
            f"pattern readwrite {prefix}/%u/#",
            "# A client sends requests on its own request topic and reads only its replies.",
            f"pattern write {prefix}/+/rpc/%c",
            f"pattern read {prefix}/+/rpc/%c/reply",
            "# Everyone reads every device's public topics.",
            f"pattern read {prefix}/+/status",
            f"pattern read {prefix}/+/events",
            f"pattern read {prefix}/+/telemetry",
            "",
        ]
    )


def _listener(port: int, bind: str | None) -> list[str]:
    if bind is None:
        return [f"listener {port}"]
    lines = [f"listener {port} {bind}"]
    # Without socket_domain a websockets listener binds every address whatever is given.
    if ipaddress.ip_address(bind).version == 4:
        lines.append("socket_domain ipv4")
    return lines


def conf_text(options: BrokerOptions, ca: Path, cert: Path, key: Path) -> str:
    """mosquitto.conf: no inline comments (mosquitto would read them as part of the value)."""
    out = options.out.resolve()
    lines = [
        "# Written by edgecam broker-config.",
        *([f"user {options.run_as}"] if options.run_as else []),
        "per_listener_settings false",
        "allow_anonymous false",
        f"password_file {out / PASSWD}",
        f"acl_file {out / ACL}",
        "connection_messages true",
        "# Replies and notifications are small writes in a row: without this each one can",
        "# wait ~40 ms for the receiver's delayed ACK (Nagle), twice per request.",
        "set_tcp_nodelay true",
        "",
        "# Devices and fleet tools: a client certificate signed by the fleet CA; its CN is",
        "# the username and, with use_username_as_clientid, the client id the agent sees.",
        *_listener(options.tls_port, options.bind),
        "protocol mqtt",
        f"cafile {ca}",
        f"certfile {cert}",
        f"keyfile {key}",
        "tls_version tlsv1.2",
        "require_certificate true",
        "use_identity_as_username true",
        "use_username_as_clientid true",
        "",
        "# Browser viewers: MQTT over secure WebSockets with a password-file account.",
        *_listener(options.wss_port, options.bind),
        "protocol websockets",
        f"certfile {cert}",
        f"keyfile {key}",
        "use_username_as_clientid true",
        "",
    ]
    return "\n".join(lines)


def _broker_cert(ca_dir: Path, name: str | None) -> tuple[Path, Path]:
    directory = ca_dir / "broker"
    if name is None:
        found = sorted(directory.glob("*.pem"))
        if len(found) != 1:
            what = "none" if not found else ", ".join(p.stem for p in found)
            raise PkiError(
                f"{directory}: expected one broker certificate, found {what} "
                "(issue one with `edgecam ca issue broker HOST`, or pick one with --broker)"
            )
        cert = found[0]
    else:
        cert = directory / f"{name}.pem"
    key = cert.with_suffix(".key")
    for path in (cert, key):
        if not path.is_file():
            raise PkiError(f"{path}: missing")
    return cert, key


def _readable_by_broker(path: Path) -> bool:
    """mosquitto reads its key and password file after dropping to group mosquitto: give
    them to that group when we can (root, group present). False if we could not."""
    try:
        os.chown(path, -1, grp.getgrnam("mosquitto").gr_gid)
    except (KeyError, PermissionError):
        return False
    path.chmod(0o640)
    return True


@dataclass(frozen=True)
class Written:
    """The files written, and the private ones group mosquitto could not be given."""

    files: list[Path]
    not_for_broker: list[Path]


def write_broker_config(options: BrokerOptions) -> Written:
    """Write mosquitto.conf, the ACL, the password file and the certificates into `out`."""
    ca_src = options.ca_dir / CA_CERT
    if not ca_src.is_file():
        raise PkiError(f"{ca_src}: missing (create the CA with `edgecam ca init`)")
    devices = {p.stem for p in (options.ca_dir / "device").glob("*.pem")}
    for viewer in options.viewers:
        if viewer.name in devices:
            raise PkiError(f"viewer {viewer.name!r} has the name of a device certificate")
    cert_src, key_src = _broker_cert(options.ca_dir, options.broker)
    certs = options.out.resolve() / "certs"
    certs.mkdir(mode=0o755, parents=True, exist_ok=True)
    ca, cert, key = certs / "ca.pem", certs / "broker.pem", certs / "broker.key"
    write_atomically(ca, ca_src.read_bytes(), mode=0o644)
    write_atomically(cert, cert_src.read_bytes(), mode=0o644)
    write_atomically(key, key_src.read_bytes(), mode=0o600)
    passwd = options.out / PASSWD
    lines = password_lines(options.viewers, shutil.which("mosquitto_passwd"))
    write_atomically(passwd, "".join(line + "\n" for line in lines).encode(), mode=0o600)
    not_for_broker = [p for p in (key, passwd) if not _readable_by_broker(p)]
    acl, conf = options.out / ACL, options.out / CONF
    write_atomically(acl, acl_text(options.topic_prefix).encode(), mode=0o644)
    write_atomically(conf, conf_text(options, ca, cert, key).encode(), mode=0o644)
    return Written([conf, acl, passwd, ca, cert, key], not_for_broker)
