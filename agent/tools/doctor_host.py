"""What `edgecam doctor` knows of the host: the installed unit, the user it runs as, and
whether that user can reach a file, judged from modes and owners (not os.access, which asks
about whoever runs the doctor, usually root).

Every absolute path goes through `Host.inside`, so that ``--root DIR`` inspects an install
made into a prefix or a chroot exactly as it would inspect /.
"""

from __future__ import annotations

import grp
import os
import pwd
import shlex
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

UNIT_NAME: Final = "edgecam.service"
UNIT_DIRS: Final = ("/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system")
DEFAULT_USER: Final = "edgecam"
DEFAULT_CONFIG: Final = "/etc/edgecam/edgecam.toml"
READ, WRITE, SEARCH = 4, 2, 1


@dataclass(frozen=True)
class Unit:
    """The [Service] settings of the installed edgecam.service that the doctor looks at."""

    path: Path
    settings: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def get(self, key: str, default: str | None = None) -> str | None:
        values = self.settings.get(key)
        return values[-1] if values else default

    def words(self, key: str) -> tuple[str, ...]:
        """Every word of every `key=` line (SupplementaryGroups=, StateDirectory=, ...)."""
        return tuple(w for line in self.settings.get(key, ()) for w in line.split())

    @property
    def exec_start(self) -> tuple[str, ...]:
        line = self.get("ExecStart", "") or ""
        argv = shlex.split(line)
        if argv:  # systemd's prefixes: - @ : + ! !!
            argv[0] = argv[0].lstrip("-@:+!")
        return tuple(argv)

    @property
    def config_path(self) -> str | None:
        argv = self.exec_start
        for i, arg in enumerate(argv):
            if arg == "--config" and i + 1 < len(argv):
                return argv[i + 1]
            if arg.startswith("--config="):
                return arg.partition("=")[2]
        return None


def parse_unit(path: Path, text: str) -> Unit:
    """The [Service] section of a unit file; repeated keys keep every line (as systemd does
    for lists), an empty assignment resets the list."""
    settings: dict[str, tuple[str, ...]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        if section == "Service" and sep:
            key, value = key.strip(), value.strip()
            settings[key] = (*settings.get(key, ()), value) if value else ()
    return Unit(path, settings)


@dataclass(frozen=True)
class ServiceUser:
    """The identity the service runs with: uid, primary gid and every group it holds."""

    name: str
    uid: int
    gid: int
    groups: frozenset[int]
    group_names: tuple[str, ...]


def _entries(root: Path | None, name: str) -> list[list[str]]:
    """The lines of DIR/etc/passwd or /etc/group in the root, split; [] without one."""
    if root is None:
        return []
    try:
        text = (root / "etc" / name).read_text()
    except OSError:
        return []
    return [line.split(":") for line in text.splitlines() if line.count(":") >= 3]


@dataclass(frozen=True)
class Host:
    """The machine being examined: / itself, or an install under ``root``."""

    root: Path | None = None

    def inside(self, path: str | os.PathLike[str]) -> Path:
        """An absolute path of the device as this host reaches it (prefixed by the root).
        A path already under the root is kept: a config rewritten for an agent that runs
        from the prefix without a chroot names its files that way."""
        p = Path(path)
        if self.root is None or not p.is_absolute() or p.is_relative_to(self.root):
            return p
        return self.root / p.relative_to(p.anchor)

    def outside(self, path: Path) -> str:
        """The inverse of `inside`: the path as the device names it."""
        if self.root is None or not path.is_relative_to(self.root):
            return str(path)
        return "/" + str(path.relative_to(self.root)).removeprefix(".")

    def find_unit(self) -> Unit | None:
        for directory in UNIT_DIRS:
            path = self.inside(directory) / UNIT_NAME
            try:
                return parse_unit(path, path.read_text())
            except OSError:
                continue
        return None

    def user(self, name: str) -> tuple[int, int] | None:
        """(uid, gid) of `name`: the root's own /etc/passwd first, then this system's."""
        for entry in _entries(self.root, "passwd"):
            if entry[0] == name and entry[2].isdigit() and entry[3].isdigit():
                return int(entry[2]), int(entry[3])
        try:
            found = pwd.getpwnam(name)
        except KeyError:
            return None
        return found.pw_uid, found.pw_gid

    def groups(self) -> dict[str, tuple[int, tuple[str, ...]]]:
        """Every group: name -> (gid, members), the root's /etc/group over this system's."""
        out = {g.gr_name: (g.gr_gid, tuple(g.gr_mem)) for g in grp.getgrall()}
        for entry in _entries(self.root, "group"):
            if entry[2].isdigit():
                out[entry[0]] = (int(entry[2]), tuple(m for m in entry[3].split(",") if m))
        return out

    def group_name(self, gid: int) -> str:
        return next((n for n, (g, _) in self.groups().items() if g == gid), str(gid))

    def user_name(self, uid: int) -> str:
        for entry in _entries(self.root, "passwd"):
            if entry[2] == str(uid):
                return entry[0]
        try:
            return pwd.getpwuid(uid).pw_name
        except KeyError:
            return str(uid)


def service_user(host: Host, unit: Unit | None) -> ServiceUser | str:
    """Who the unit runs as (User=, Group=, SupplementaryGroups= and the group database, as
    systemd's initgroups gives them), or why that user cannot be found."""
    name = (unit.get("User") if unit else None) or DEFAULT_USER
    ids = host.user(name)
    if ids is None:
        return f"user {name!r} does not exist"
    uid, gid = ids
    groups = host.groups()
    primary = unit.get("Group") if unit else None
    if primary:
        if primary not in groups:
            return f"group {primary!r} (Group= of the unit) does not exist"
        gid = groups[primary][0]
    extra = unit.words("SupplementaryGroups") if unit else ()
    missing = [g for g in extra if g not in groups]
    if missing:
        return f"group {missing[0]!r} (SupplementaryGroups= of the unit) does not exist"
    held = {gid} | {groups[g][0] for g in extra}
    held |= {g for g, members in groups.values() if name in members}
    names = tuple(sorted(n for n, (g, _) in groups.items() if g in held))
    return ServiceUser(name, uid, gid, frozenset(held), names)


def permits(user: ServiceUser, st: os.stat_result, want: int) -> bool:
    """Whether the mode bits give `user` every access in `want` (root: always, as the
    kernel does for read and write)."""
    if user.uid == 0:
        return True
    if st.st_uid == user.uid:
        bits = st.st_mode >> 6
    elif st.st_gid in user.groups:
        bits = st.st_mode >> 3
    else:
        bits = st.st_mode
    return bits & want == want


def describe(host: Host, st: os.stat_result) -> str:
    """``owner root:edgecam, mode 0640`` for a message."""
    owner = f"{host.user_name(st.st_uid)}:{host.group_name(st.st_gid)}"
    return f"owner {owner}, mode {stat.S_IMODE(st.st_mode):04o}"


def blocked_by(host: Host, user: ServiceUser, path: Path, want: int) -> str | None:
    """Why `user` cannot reach `path` with `want` access (a directory on the way it cannot
    enter, or the file's own mode), or None when it can. Raises OSError if `path` is
    missing or cannot be looked at."""
    top = host.root.absolute() if host.root is not None else Path("/")
    for directory in reversed(path.absolute().parents):
        if directory == top or top not in directory.parents:
            continue  # above the root: not part of the device
        st = directory.stat()
        if not permits(user, st, SEARCH):
            return f"{user.name} cannot enter {directory} ({describe(host, st)})"
    st = path.stat()
    if not permits(user, st, want):
        verb = {READ: "read", WRITE: "write", READ | WRITE: "read and write"}.get(want, "use")
        return f"{user.name} cannot {verb} it ({describe(host, st)})"
    return None
