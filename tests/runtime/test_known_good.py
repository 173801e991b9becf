"""agent/runtime/known_good.py: a start goes back to the last known-good overrides when the
saved ones are invalid, or after `MAX_ATTEMPTS` starts in a row that never became healthy;
`mark_healthy` makes the overrides in force the good ones and resets the count."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import OVERRIDE_FILE, ConfigError
from agent.runtime.known_good import (
    ATTEMPTS_FILE,
    GOOD_FILE,
    MAX_ATTEMPTS,
    load_for_boot,
    mark_healthy,
)

GOOD = b"[webrtc]\nmax_viewers = 4\n"
NEW = b"[webrtc]\nmax_viewers = 2\n"
INVALID = b"[camera]\nwidth = 321\n"  # odd: refused by load_config


@pytest.fixture
def main_file(tmp_path: Path) -> Path:
    path = tmp_path / "edgecam.toml"
    path.write_text(
        f'[device]\nid = "cam-01"\nstate_dir = "{tmp_path}/state"\n\n'
        '[mqtt]\nurl = "mqtts://broker.example"\n\n[camera]\nsource = "testsrc"\n'
    )
    return path


@pytest.fixture
def state(tmp_path: Path) -> Path:
    directory = tmp_path / "state"
    directory.mkdir()
    return directory


def attempts(state: Path) -> int | None:
    path = state / ATTEMPTS_FILE
    return int(path.read_text()) if path.exists() else None


def test_no_overrides_boots_the_main_file_and_counts_nothing(main_file: Path, state: Path) -> None:
    boot = load_for_boot(main_file)
    assert boot.reverted is None
    assert boot.config.webrtc.max_viewers == 8
    assert attempts(state) is None


def test_valid_overrides_apply_and_each_start_is_counted(main_file: Path, state: Path) -> None:
    (state / OVERRIDE_FILE).write_bytes(NEW)
    for start in range(1, MAX_ATTEMPTS + 1):
        boot = load_for_boot(main_file)
        assert boot.reverted is None
        assert boot.config.webrtc.max_viewers == 2
        assert attempts(state) == start
    assert (state / OVERRIDE_FILE).read_bytes() == NEW


def test_invalid_overrides_go_back_to_the_good_ones_at_once(main_file: Path, state: Path) -> None:
    (state / GOOD_FILE).write_bytes(GOOD)
    (state / OVERRIDE_FILE).write_bytes(INVALID)
    boot = load_for_boot(main_file)
    assert boot.reverted is not None
    assert "invalid" in boot.reverted and "camera.width" in boot.reverted
    assert boot.config.webrtc.max_viewers == 4
    assert boot.config.camera.width == 1280
    assert (state / OVERRIDE_FILE).read_bytes() == GOOD
    assert attempts(state) == 1


def test_invalid_overrides_with_no_good_ones_are_removed(main_file: Path, state: Path) -> None:
    (state / OVERRIDE_FILE).write_bytes(INVALID)
    boot = load_for_boot(main_file)
    assert boot.reverted is not None and "invalid" in boot.reverted
    assert not (state / OVERRIDE_FILE).exists()
    assert boot.config.camera.width == 1280
    # The next start has nothing to revert.
    assert load_for_boot(main_file).reverted is None


def test_starts_that_never_become_healthy_go_back_after_max_attempts(
    main_file: Path, state: Path
) -> None:
    (state / GOOD_FILE).write_bytes(GOOD)
    (state / OVERRIDE_FILE).write_bytes(NEW)
    for _ in range(MAX_ATTEMPTS):
        boot = load_for_boot(main_file)
        assert boot.reverted is None
        assert boot.config.webrtc.max_viewers == 2
    boot = load_for_boot(main_file)
    assert boot.reverted == f"{MAX_ATTEMPTS} starts in a row never reached the broker"
    assert boot.config.webrtc.max_viewers == 4
    assert (state / OVERRIDE_FILE).read_bytes() == GOOD
    # The reverted start is the first one with the good overrides.
    assert attempts(state) == 1


def test_mark_healthy_blesses_the_overrides_and_resets_the_count(
    main_file: Path, state: Path
) -> None:
    (state / GOOD_FILE).write_bytes(GOOD)
    (state / OVERRIDE_FILE).write_bytes(NEW)
    for _ in range(MAX_ATTEMPTS):
        load_for_boot(main_file)
    mark_healthy(state)
    assert (state / GOOD_FILE).read_bytes() == NEW
    assert attempts(state) is None
    # A full run of unhealthy starts is allowed again before anything reverts.
    for start in range(1, MAX_ATTEMPTS + 1):
        boot = load_for_boot(main_file)
        assert boot.reverted is None, start
        assert boot.config.webrtc.max_viewers == 2
    # And when it does revert, it is to the overrides that were blessed.
    boot = load_for_boot(main_file)
    assert boot.reverted is not None
    assert boot.config.webrtc.max_viewers == 2
    assert (state / OVERRIDE_FILE).read_bytes() == NEW


def test_mark_healthy_never_blesses_a_file_that_does_not_parse(state: Path) -> None:
    (state / GOOD_FILE).write_bytes(GOOD)
    (state / OVERRIDE_FILE).write_bytes(b"[webrtc\nmax_viewers = \n")
    with pytest.raises(ConfigError):
        mark_healthy(state)
    assert (state / GOOD_FILE).read_bytes() == GOOD


@pytest.mark.parametrize(
    "text",
    ['[device]\nid = "cam 01"\n[mqtt]\nurl = "mqtts://b"\n', "[device\n", ""],
    ids=["bad-id", "not-toml", "empty"],
)
def test_a_bad_main_file_raises_config_error(tmp_path: Path, state: Path, text: str) -> None:
    path = tmp_path / "edgecam.toml"
    path.write_text(text.replace("[mqtt]", f'state_dir = "{state}"\n[mqtt]'))
    (state / GOOD_FILE).write_bytes(GOOD)
    (state / OVERRIDE_FILE).write_bytes(NEW)
    with pytest.raises(ConfigError):
        load_for_boot(path)
    # Nothing to fall back to, so nothing is touched.
    assert (state / OVERRIDE_FILE).read_bytes() == NEW
    assert attempts(state) is None
