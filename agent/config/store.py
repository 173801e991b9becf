"""Writing configuration: the effective config as data (secrets redacted for clients), and
the override file written atomically. ``write_atomically`` is the one helper every file the
agent writes goes through (temp file, fsync, rename, fsync of the directory): a power cut on
an SD card leaves the old file or the new one, never a broken one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomli_w

from agent.config.reader import ConfigError, Problem, TomlSource, format_problems, merge
from agent.config.schema import OVERRIDE_FILE, REDACTED, Config, screen_patch, to_dict

logger = logging.getLogger(__name__)


def redacted(config: Config) -> dict[str, Any]:
    """The effective config as JSON-able data with every secret value replaced by "***"."""
    raw = to_dict(config)
    if "password" in raw["mqtt"]:
        raw["mqtt"]["password"] = REDACTED
    for server in raw["webrtc"]["ice_servers"]:
        if "credential" in server:
            server["credential"] = REDACTED
    return raw


def save_overrides(state_dir: str | os.PathLike[str], patch: Mapping[str, Any]) -> Path:
    """Merge ``patch`` into ``state_dir/config.override.toml``, written atomically: a crash at
    any moment leaves either the old file or the new one. Validate ``patch`` with
    ``apply_patch`` first; this only refuses what a TOML file cannot hold. Returns the path.
    OSError (disk full, read-only) propagates unchanged."""
    directory = Path(state_dir)
    target = directory / OVERRIDE_FILE
    current: dict[str, Any] = {}
    if target.exists():
        current = TomlSource.read(target).data
    problems: list[Problem] = []
    merged = merge(current, screen_patch(patch, problems))
    if problems:
        raise ConfigError(format_problems(problems, []))
    try:
        text = tomli_w.dumps(merged)
    except (TypeError, ValueError) as e:
        raise ConfigError([f"{target}: cannot be written as TOML: {e}"]) from None
    header = "# Written by edgecam (config.set); merged over the main config file at start.\n"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomically(target, (header + text).encode())
    logger.info("config overrides saved to %s", target)
    return target


def write_atomically(target: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``target`` with ``data`` (file mode ``mode``) so that a crash leaves the old
    file or the new one."""
    # mkstemp creates the file 0600 in the same directory, so os.replace stays on one
    # filesystem (atomic) and overrides holding a password are never readable by others.
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    # The rename itself is only durable once the directory entry is on disk.
    dir_fd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
