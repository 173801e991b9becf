"""`edgecam doctor`'s checks of file ownership and modes: every file the service reads must
be readable by the user the unit runs as, the private key by nobody else (its group at most,
when that is the service's own), and the state directory writable where the unit lets it."""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

from agent.config import Config
from agent.tools.doctor_host import READ, SEARCH, WRITE, Host, ServiceUser, Unit, blocked_by
from agent.tools.doctor_result import CheckResult, Device, fail, ok, skip, warn


def _reach(
    host: Host, user: ServiceUser, name: str, path: Path, want: int
) -> CheckResult | os.stat_result:
    """The file's stat if `user` can use it as `want`; else the failing result."""
    try:
        why = blocked_by(host, user, path, want)
        st = path.stat()
    except FileNotFoundError:
        return fail(name, f"{path} does not exist", f"install it, or fix {name} in the config")
    except OSError as exc:
        return skip(name, f"{path}: {exc.strerror}: run edgecam doctor as root to look")
    if why is not None:
        group = host.group_name(user.gid)
        return fail(
            name,
            f"{path}: {why}",
            f"chgrp {group} {path} && chmod g+r {path}, and "
            f"let {user.name} enter every directory on the way",
        )
    if st.st_mode & stat.S_IWOTH:
        return fail(name, f"{path} is writable by every user", f"chmod o-w {path}")
    return st


def check_readable(device: Device, user: ServiceUser, name: str, path: str) -> CheckResult:
    """A file the service reads: a certificate, the CA, the camera's file."""
    found = _reach(device.host, user, name, Path(path), READ)
    if isinstance(found, CheckResult):
        return found
    return ok(name, f"{path}: readable by {user.name}")


def check_key_file(device: Device, user: ServiceUser, path: str) -> CheckResult:
    name, host = "mqtt.key file", device.host
    found = _reach(host, user, name, Path(path), READ)
    if isinstance(found, CheckResult):
        return found
    mode = stat.S_IMODE(found.st_mode)
    fix = f"chown {user.name}:{host.group_name(user.gid)} {path} && chmod 600 {path}"
    if mode & stat.S_IRWXO:
        return fail(name, f"{path} is open to every user (mode {mode:04o})", fix)
    if mode & stat.S_IRGRP and found.st_gid != user.gid:
        group = host.group_name(found.st_gid)
        return fail(name, f"{path} is readable by group {group}, not only the service's", fix)
    return ok(name, f"{path}: readable by {user.name} only (mode {mode:04o})")


def check_config_file(device: Device, user: ServiceUser, config: Config | None) -> CheckResult:
    name, path = "config file", device.config_path
    found = _reach(device.host, user, name, path, READ)
    if isinstance(found, CheckResult):
        return found
    secrets = config is not None and (
        config.mqtt.password is not None
        or any(s.credential is not None for s in config.webrtc.ice_servers)
    )
    if secrets and found.st_mode & stat.S_IROTH:
        return warn(
            name,
            f"{path} holds a password or TURN credential and every user can read it",
            f"chmod o-r {path}",
        )
    return ok(name, f"{path}: readable by {user.name}")


def _writable_by_unit(unit: Unit, state_dir: str) -> bool:
    """Whether ProtectSystem=strict leaves `state_dir` writable: under a StateDirectory=
    or a ReadWritePaths= entry."""
    if unit.get("ProtectSystem") != "strict":
        return True
    allowed = [f"/var/lib/{d}" for d in unit.words("StateDirectory")]
    allowed += [p.lstrip("-") for p in unit.words("ReadWritePaths")]
    target = PurePosixPath(state_dir)
    return any(target == PurePosixPath(a) or PurePosixPath(a) in target.parents for a in allowed)


def _state_dir_by_systemd(unit: Unit | None, state_dir: str) -> bool:
    return unit is not None and state_dir in [f"/var/lib/{d}" for d in unit.words("StateDirectory")]


def check_state_dir(device: Device, user: ServiceUser, path: Path) -> CheckResult:
    name, unit, host = "device.state_dir", device.unit, device.host
    state_dir = host.outside(path)  # as the unit names it
    if unit is not None and not _writable_by_unit(unit, state_dir):
        return fail(
            name,
            f"{state_dir}: read-only for the service (ProtectSystem=strict in {unit.path})",
            "use /var/lib/edgecam (StateDirectory=edgecam)",
        )
    path = host.inside(state_dir)
    if not path.exists():
        if _state_dir_by_systemd(unit, state_dir):
            return ok(name, f"{state_dir}: made by systemd at start (StateDirectory=)")
        return fail(name, f"{path} does not exist", f"install -d -o {user.name} -m 0700 {path}")
    found = _reach(host, user, name, path, READ | WRITE | SEARCH)
    if isinstance(found, CheckResult):
        return found
    return ok(name, f"{path}: writable by {user.name}")


def check_files(device: Device) -> list[CheckResult]:
    """One line per file the service needs (config, CA, certificate, key, camera file,
    state directory), each judged as the service's user sees it."""
    user = device.user
    if not isinstance(user, ServiceUser):
        return [skip("files", "no service user to judge them by")]
    config = device.config
    out = [check_config_file(device, user, config)]
    if config is None:
        return out
    mqtt = config.mqtt
    if mqtt.tls:
        out += [check_readable(device, user, "mqtt.ca file", mqtt.ca)] if mqtt.ca else []
        out += [check_readable(device, user, "mqtt.cert file", mqtt.cert)] if mqtt.cert else []
        out += [check_key_file(device, user, mqtt.key)] if mqtt.key else []
    camera = config.camera
    if camera.source == "file" and camera.path:
        out.append(check_readable(device, user, "camera.path", camera.path))
    elif camera.source == "v4l2" and camera.path:
        found = _reach(device.host, user, "camera.path", Path(camera.path), READ | WRITE)
        if isinstance(found, CheckResult):
            out.append(found)
        else:
            out.append(ok("camera.path", f"{camera.path}: {user.name} can read and write it"))
    out.append(check_state_dir(device, user, Path(config.device.state_dir)))
    return out
