"""The last known-good configuration, and the way back to it.

``config.set`` validates what it can before saving, but some keys only prove themselves at
the next start (a broker URL, a certificate the broker refuses). So the overrides in force at
the last healthy start are kept as ``config.override.good.toml``, and each start is counted in
``boot-attempts``: a start that cannot load its config, or a start after `MAX_ATTEMPTS` in a
row that never became healthy (connected to the broker), goes back to the good overrides,
and to the main file alone if those will not load either (after an upgrade, say).
A device nobody can reach must never be bricked by one remote change.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from agent.config import OVERRIDE_FILE, Config, ConfigError, load_config, write_atomically
from agent.config.reader import TomlSource

logger = logging.getLogger(__name__)

GOOD_FILE: Final = "config.override.good.toml"
ATTEMPTS_FILE: Final = "boot-attempts"
MAX_ATTEMPTS: Final = 3


@dataclass(frozen=True, slots=True)
class Boot:
    """The config this start runs with, and why it is not the one on disk (if so)."""

    config: Config
    reverted: str | None = None


def _state_dir_of(path: str | os.PathLike[str]) -> Path:
    # The state dir is named by the main file alone (it can't be overridden).
    return Path(load_config(path, state_dir_overrides=False).device.state_dir)


def _attempts(state_dir: Path) -> int:
    try:
        return int((state_dir / ATTEMPTS_FILE).read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def _revert(state_dir: Path) -> None:
    """Put the good overrides back (none: no overrides at all)."""
    good = state_dir / GOOD_FILE
    if good.exists():
        write_atomically(state_dir / OVERRIDE_FILE, good.read_bytes())
    else:
        (state_dir / OVERRIDE_FILE).unlink(missing_ok=True)


def load_for_boot(path: str | os.PathLike[str]) -> Boot:
    """The config to start with, counting this start. Raises ConfigError only when the main
    file itself is bad (nothing to fall back to)."""
    state_dir = _state_dir_of(path)  # ConfigError: the main file is bad
    has_overrides = (state_dir / OVERRIDE_FILE).exists()
    attempts = _attempts(state_dir) + 1
    reverted: str | None = None
    if has_overrides and attempts > MAX_ATTEMPTS:
        reverted = f"{attempts - 1} starts in a row never reached the broker"
    else:
        try:
            config = load_config(path)
        except ConfigError as exc:
            if not has_overrides:
                raise
            reverted = f"the saved overrides are invalid: {exc.problems[0]}"
    if reverted is not None:
        logger.error("config: going back to the last known-good overrides: %s", reverted)
        _revert(state_dir)
        try:
            config = load_config(path)
        except ConfigError as exc:
            logger.error("config: the known-good overrides do not load either (%s): none", exc)
            (state_dir / OVERRIDE_FILE).unlink(missing_ok=True)
            config = load_config(path)
        attempts = 1
    if has_overrides or reverted:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomically(state_dir / ATTEMPTS_FILE, f"{attempts}\n".encode())
    return Boot(config, reverted)


def mark_healthy(state_dir: str | os.PathLike[str]) -> None:
    """This start works: its overrides become the known-good ones."""
    directory = Path(state_dir)
    current = directory / OVERRIDE_FILE
    if current.exists():
        TomlSource.read(current)  # never bless a file that does not parse
        write_atomically(directory / GOOD_FILE, current.read_bytes())
    (directory / ATTEMPTS_FILE).unlink(missing_ok=True)
