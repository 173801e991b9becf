"""``edgecam check``: the config file, then every file it names, before the agent needs them.

load_config only reads the TOML; this module opens what the config points at (certificates,
key, camera, state directory) so that a deployment learns of a missing or expired file from
``edgecam check`` rather than from a failed TLS handshake at 3 a.m.
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

from agent.config import OVERRIDE_FILE, Config, ConfigError, load_config

EXPIRY_WARNING = datetime.timedelta(days=14)


def _error(key: str, message: str) -> str:
    return f"error: {key}: {message}"


def _warning(key: str, message: str) -> str:
    return f"warning: {key}: {message}"


def _read(key: str, path: str, out: list[str]) -> bytes | None:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        out.append(_error(key, f"{path}: {e.strerror or e}"))
        return None


def _certificates(key: str, path: str, out: list[str]) -> list[x509.Certificate]:
    data = _read(key, path, out)
    if data is None:
        return []
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        out.append(_error(key, f"{path}: not a PEM certificate"))
        return []


def _check_validity(key: str, path: str, cert: x509.Certificate, out: list[str]) -> None:
    now = datetime.datetime.now(datetime.UTC)
    subject = cert.subject.rfc4514_string()
    if cert.not_valid_after_utc < now:
        expired = cert.not_valid_after_utc.date()
        out.append(_error(key, f"{path}: certificate {subject} expired on {expired}"))
    elif cert.not_valid_before_utc > now:
        since = cert.not_valid_before_utc
        out.append(_error(key, f"{path}: certificate {subject} is not valid before {since}"))
    elif cert.not_valid_after_utc < now + EXPIRY_WARNING:
        until = cert.not_valid_after_utc.date()
        out.append(_warning(key, f"{path}: certificate {subject} expires on {until}"))


def _private_key(path: str, out: list[str]) -> PrivateKeyTypes | None:
    data = _read("mqtt.key", path, out)
    if data is None:
        return None
    mode = os.stat(path).st_mode
    if mode & stat.S_IROTH:
        out.append(_warning("mqtt.key", f"{path}: readable by every user; chmod o-r {path}"))
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:  # cryptography's way of saying "encrypted, and no password given"
        out.append(_error("mqtt.key", f"{path}: encrypted; edgecam needs an unencrypted key"))
    except (ValueError, UnsupportedAlgorithm):
        out.append(_error("mqtt.key", f"{path}: not a PEM private key"))
    return None


def _public_der(obj: x509.Certificate | PrivateKeyTypes) -> bytes:
    public = obj.public_key()
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _check_mqtt(config: Config, out: list[str]) -> None:
    mqtt = config.mqtt
    if not mqtt.tls:
        for name, value in (("ca", mqtt.ca), ("cert", mqtt.cert), ("key", mqtt.key)):
            if value:
                out.append(_warning(f"mqtt.{name}", "ignored: mqtt.url is plain mqtt://"))
        return
    if mqtt.ca:
        now = datetime.datetime.now(datetime.UTC)
        cas = _certificates("mqtt.ca", mqtt.ca, out)
        # A bundle may well hold some expired CAs; only a bundle of nothing but is an error.
        if cas and all(ca.not_valid_after_utc < now for ca in cas):
            out.append(_error("mqtt.ca", f"{mqtt.ca}: every certificate in it has expired"))
    if not (mqtt.cert and mqtt.key):
        return
    certs = _certificates("mqtt.cert", mqtt.cert, out)
    private_key = _private_key(mqtt.key, out)
    if not certs:
        return
    _check_validity("mqtt.cert", mqtt.cert, certs[0], out)
    if private_key is not None and _public_der(private_key) != _public_der(certs[0]):
        out.append(_error("mqtt.key", f"{mqtt.key} is not the key of {mqtt.cert}"))
    names = certs[0].subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    cn = str(names[0].value) if names else None
    if cn != config.device.id:
        out.append(
            _warning(
                "device.id",
                f"{config.device.id!r} is not the CN of {mqtt.cert} ({cn!r}); a broker that "
                "takes the CN as the user name (use_identity_as_username) will deny its topics",
            )
        )


def _check_camera(config: Config, out: list[str]) -> None:
    camera = config.camera
    if camera.source == "file":
        try:
            # stat before open: opening a FIFO would block until a writer comes.
            if not stat.S_ISREG(os.stat(camera.path).st_mode):
                out.append(_error("camera.path", f"{camera.path}: not a regular file"))
                return
            with open(camera.path, "rb") as f:
                f.read(1)
        except OSError as e:
            out.append(_error("camera.path", f"{camera.path}: {e.strerror or e}"))
    elif camera.source == "v4l2":
        try:
            mode = os.stat(camera.path).st_mode
        except OSError as e:
            out.append(_error("camera.path", f"{camera.path}: {e.strerror or e}"))
            return
        if not stat.S_ISCHR(mode):
            out.append(_warning("camera.path", f"{camera.path}: not a character device"))
        elif not os.access(camera.path, os.R_OK | os.W_OK):
            out.append(_error("camera.path", f"{camera.path}: no read/write permission"))


def _check_state_dir(config: Config, out: list[str]) -> None:
    state_dir = Path(config.device.state_dir)
    # Without creating anything: the nearest existing ancestor must let us create the rest.
    existing = state_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        out.append(_error("device.state_dir", f"{existing} is not a directory"))
    elif not os.access(existing, os.W_OK | os.X_OK):
        what = "not writable" if existing == state_dir else f"cannot be created in {existing}"
        out.append(_error("device.state_dir", f"{state_dir}: {what}"))
    override = state_dir / OVERRIDE_FILE
    if override.is_file() and override.stat().st_mode & stat.S_IROTH:
        out.append(_warning("device.state_dir", f"{override}: readable by every user"))


CameraProbe = Callable[[Config], list[str]]


def check_files(config: Config, probe_camera: CameraProbe | None = None) -> list[str]:
    """Open every file ``config`` names; one line per problem, each starting with ``error:``
    (the agent would fail) or ``warning:`` (it would run, but probably not as meant).
    ``probe_camera`` (the command line passes hw's) checks that the source really opens here;
    without it only the camera's path is looked at."""
    out: list[str] = []
    _check_mqtt(config, out)
    if probe_camera is None:
        _check_camera(config, out)
    else:
        out += [_error("camera.source", problem) for problem in probe_camera(config)]
    _check_state_dir(config, out)
    return out


def run_check(path: str | os.PathLike[str], probe_camera: CameraProbe | None = None) -> int:
    """``edgecam check``: print each problem to stderr, "ok: PATH" to stdout when there is no
    error; return the exit status (0 ok, warnings allowed; 1 on any error)."""
    try:
        config = load_config(path)
    except ConfigError as e:
        for problem in e.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1
    problems = check_files(config, probe_camera)
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
