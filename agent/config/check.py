"""``edgecam check``: the config file, then every file it names, before the agent needs them.

load_config only reads the TOML; this module opens what the config points at (certificates,
key, camera, state directory) so that a deployment learns of a missing or expired file from
``edgecam check`` rather than from a failed TLS handshake at 3 a.m. One run reports every
problem: the file's schema problems and those of the files it names, each at the line of the
key that names it (a value that is itself wrong is not opened as well).
"""

from __future__ import annotations

import datetime
import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import NameOID

from agent.config import OVERRIDE_FILE, Config, ConfigError
from agent.config.load import read_config
from agent.config.reader import Finding, KeyPath, dotted, format_findings

EXPIRY_WARNING = datetime.timedelta(days=14)
ERROR, WARNING = "error", "warning"
Trusted = Callable[[KeyPath], bool]  # False: the key's value had a problem of its own


def _everything(_key: KeyPath) -> bool:
    return True


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ValueError(f"{path}: {e.strerror or e}") from None


def read_certificates(path: str) -> list[x509.Certificate]:
    """Every certificate of a PEM file (at least one); ValueError naming the path and why."""
    try:
        certs = x509.load_pem_x509_certificates(_read(path))
    except ValueError as e:
        if str(e).startswith(path):
            raise
        raise ValueError(f"{path}: not a PEM certificate") from None
    return certs


def read_private_key(path: str) -> PrivateKeyTypes:
    """An unencrypted PEM private key; ValueError naming the path and why."""
    data = _read(path)
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:  # cryptography's way of saying "encrypted, and no password given"
        raise ValueError(f"{path}: encrypted; edgecam needs an unencrypted key") from None
    except (ValueError, UnsupportedAlgorithm):
        raise ValueError(f"{path}: not a PEM private key") from None


def public_der(obj: x509.Certificate | PrivateKeyTypes) -> bytes:
    """The SubjectPublicKeyInfo of a certificate or a private key, to compare the two."""
    return obj.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _validity(key: KeyPath, path: str, cert: x509.Certificate, out: list[Finding]) -> None:
    now = datetime.datetime.now(datetime.UTC)
    subject = cert.subject.rfc4514_string()
    if cert.not_valid_after_utc < now:
        expired = cert.not_valid_after_utc.date()
        out.append((ERROR, key, f"{path}: certificate {subject} expired on {expired}"))
    elif cert.not_valid_before_utc > now:
        since = cert.not_valid_before_utc
        out.append((ERROR, key, f"{path}: certificate {subject} is not valid before {since}"))
    elif cert.not_valid_after_utc < now + EXPIRY_WARNING:
        until = cert.not_valid_after_utc.date()
        out.append((WARNING, key, f"{path}: certificate {subject} expires on {until}"))


def _private_key(path: str, out: list[Finding]) -> PrivateKeyTypes | None:
    key = ("mqtt", "key")
    try:
        private_key = read_private_key(path)
    except ValueError as e:
        out.append((ERROR, key, str(e)))
        return None
    if os.stat(path).st_mode & stat.S_IROTH:
        out.append((WARNING, key, f"{path}: readable by every user; chmod o-r {path}"))
    return private_key


def _check_ca(ca: str, out: list[Finding]) -> None:
    now = datetime.datetime.now(datetime.UTC)
    try:
        cas = read_certificates(ca)
    except ValueError as e:
        out.append((ERROR, ("mqtt", "ca"), str(e)))
        return
    # A bundle may well hold some expired CAs; only a bundle of nothing but is an error.
    if all(c.not_valid_after_utc < now for c in cas):
        out.append((ERROR, ("mqtt", "ca"), f"{ca}: every certificate in it has expired"))


def _check_client_cert(config: Config, trusted: Trusted, out: list[Finding]) -> None:
    mqtt = config.mqtt
    assert mqtt.cert is not None and mqtt.key is not None
    try:
        cert: x509.Certificate | None = read_certificates(mqtt.cert)[0]
    except ValueError as e:
        out.append((ERROR, ("mqtt", "cert"), str(e)))
        cert = None
    private_key = _private_key(mqtt.key, out)
    if cert is None:
        return
    _validity(("mqtt", "cert"), mqtt.cert, cert, out)
    if private_key is not None and public_der(private_key) != public_der(cert):
        out.append((ERROR, ("mqtt", "key"), f"{mqtt.key} is not the key of {mqtt.cert}"))
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    cn = str(names[0].value) if names else None
    if cn != config.device.id and trusted(("device", "id")):
        out.append(
            (
                WARNING,
                ("device", "id"),
                f"{config.device.id!r} is not the CN of {mqtt.cert} ({cn!r}); a broker that "
                "takes the CN as the user name (use_identity_as_username) will deny its topics",
            )
        )


def _check_mqtt(config: Config, trusted: Trusted, out: list[Finding]) -> None:
    mqtt = config.mqtt
    if not mqtt.tls:
        for name, value in (("ca", mqtt.ca), ("cert", mqtt.cert), ("key", mqtt.key)):
            if value:
                out.append((WARNING, ("mqtt", name), "ignored: mqtt.url is plain mqtt://"))
        return
    if mqtt.ca and trusted(("mqtt", "ca")):
        _check_ca(mqtt.ca, out)
    if mqtt.cert and mqtt.key and trusted(("mqtt", "cert")) and trusted(("mqtt", "key")):
        _check_client_cert(config, trusted, out)


def _check_camera_path(config: Config, out: list[Finding]) -> None:
    camera, key = config.camera, ("camera", "path")
    try:
        mode = os.stat(camera.path).st_mode
        if camera.source == "file":
            # stat before open: opening a FIFO would block until a writer comes.
            if not stat.S_ISREG(mode):
                out.append((ERROR, key, f"{camera.path}: not a regular file"))
                return
            with open(camera.path, "rb") as f:
                f.read(1)
            return
    except OSError as e:
        out.append((ERROR, key, f"{camera.path}: {e.strerror or e}"))
        return
    if not stat.S_ISCHR(mode):
        out.append((WARNING, key, f"{camera.path}: not a character device"))
    elif not os.access(camera.path, os.R_OK | os.W_OK):
        out.append((ERROR, key, f"{camera.path}: no read/write permission"))


def _check_state_dir(config: Config, out: list[Finding]) -> None:
    state_dir, key = Path(config.device.state_dir), ("device", "state_dir")
    # Without creating anything: the nearest existing ancestor must let us create the rest.
    existing = state_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        out.append((ERROR, key, f"{existing} is not a directory"))
    elif not os.access(existing, os.W_OK | os.X_OK):
        what = "not writable" if existing == state_dir else f"cannot be created in {existing}"
        out.append((ERROR, key, f"{state_dir}: {what}"))
    override = state_dir / OVERRIDE_FILE
    if override.is_file() and override.stat().st_mode & stat.S_IROTH:
        out.append((WARNING, key, f"{override}: readable by every user"))


CameraProbe = Callable[[Config], list[str]]


def file_findings(
    config: Config, probe_camera: CameraProbe | None = None, trusted: Trusted = _everything
) -> list[Finding]:
    """(severity, key, message) for every problem of the files ``config`` names; a key for
    which ``trusted`` is False (its value had a problem of its own) is not looked at."""
    out: list[Finding] = []
    _check_mqtt(config, trusted, out)
    if trusted(("camera",)):
        if probe_camera is not None:
            out += [(ERROR, ("camera", "source"), p) for p in probe_camera(config)]
        elif config.camera.source in ("file", "v4l2"):
            _check_camera_path(config, out)
    if trusted(("device", "state_dir")):
        _check_state_dir(config, out)
    return out


def check_files(config: Config, probe_camera: CameraProbe | None = None) -> list[str]:
    """Open every file ``config`` names; one line per problem, each starting with ``error:``
    (the agent would fail) or ``warning:`` (it would run, but probably not as meant).
    ``probe_camera`` (the command line passes hw's) checks that the source really opens here;
    without it only the camera's path is looked at."""
    return [f"{sev}: {dotted(key)}: {msg}" for sev, key, msg in file_findings(config, probe_camera)]


def _untrusted(problem_keys: list[KeyPath]) -> Trusted:
    def trusted(key: KeyPath) -> bool:
        # A problem at the key, inside it (camera.width for camera) or at a table holding it.
        return not any(p[: len(key)] == key or key[: len(p)] == p for p in problem_keys)

    return trusted


def run_check(path: str | os.PathLike[str], probe_camera: CameraProbe | None = None) -> int:
    """``edgecam check``: print each problem to stderr, "ok: PATH" to stdout when there is no
    error; return the exit status (0 ok, warnings allowed; 1 on any error)."""
    try:
        loaded = read_config(path)
    except ConfigError as e:  # unreadable, or not TOML: nothing more can be looked at
        for problem in e.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1
    findings: list[Finding] = [(ERROR, key, message) for key, message in loaded.problems]
    trusted = _untrusted([key for key, _ in loaded.problems])
    findings += file_findings(loaded.config, probe_camera, trusted)
    problems = format_findings(findings, loaded.sources)
    config = loaded.config
    secrets = config.mqtt.password is not None or any(
        s.credential is not None for s in config.webrtc.ice_servers
    )
    if secrets and os.stat(path).st_mode & stat.S_IROTH:
        problems.append(
            f"warning: {path}: holds a password or TURN credential and is readable by every user"
        )
    for problem in problems:
        print(problem, file=sys.stderr)
    if any(p.startswith("error:") for p in problems):
        return 1
    print(f"ok: {path}")
    return 0
