"""agent/runtime/config_changes.py: config.set and stream.set validate first, apply what is
live, save atomically to state_dir/config.override.toml, and say what waits for a restart.

The target is a small stand-in for the running agent (runtime/app.py's Agent): it records
what a change asked of it, and its camera records `apply` calls (or refuses them)."""

from __future__ import annotations

import asyncio
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from agent.config import OVERRIDE_FILE, CameraConfig, Config, ConfigError, load_config
from agent.config import store as config_store
from agent.control.api import StreamChangeError
from agent.runtime import config_changes
from agent.runtime.config_changes import ConfigChanges, restart_keys


class StubCamera:
    """The supervisor's `apply`, recorded; it refuses with `refusal` when one is set.

    It yields to the loop like the real one (which opens the camera on a thread)."""

    def __init__(self) -> None:
        self.applied: list[CameraConfig] = []
        self.refusal: StreamChangeError | None = None

    async def apply(self, wanted: CameraConfig) -> None:
        await asyncio.sleep(0)
        if self.refusal is not None:
            raise self.refusal
        self.applied.append(wanted)


class Target:
    """The running agent, as far as ConfigChanges can see it."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.camera = StubCamera()
        self.applied: list[Config] = []
        self.stream_changes = 0
        self.events: list[tuple[str, dict[str, Any]]] = []

    def config_applied(self, new: Config) -> None:
        self.applied.append(new)
        self.config = new

    def stream_changed(self) -> None:
        self.stream_changes += 1

    def stream_info(self) -> dict[str, Any]:
        camera = self.config.camera
        return {"width": camera.width, "height": camera.height, "bitrate": camera.bitrate}

    def publish_event(self, name: str, **fields: Any) -> None:
        self.events.append((name, fields))


@pytest.fixture
def target(tmp_path: Path) -> Target:
    path = tmp_path / "edgecam.toml"
    path.write_text(
        f'[device]\nid = "cam-01"\nstate_dir = "{tmp_path}/state"\n\n'
        '[mqtt]\nurl = "mqtts://broker.example"\n\n'
        '[camera]\nsource = "testsrc"\nwidth = 320\nheight = 240\nbitrate = 500000\n'
    )
    return Target(load_config(path))


def override_path(target: Target) -> Path:
    return Path(target.config.device.state_dir) / OVERRIDE_FILE


def saved(target: Target) -> dict[str, Any]:
    return tomllib.loads(override_path(target).read_text())


def assert_nothing_done(target: Target, before: Config) -> None:
    assert not override_path(target).exists()
    assert target.config == before
    assert target.applied == []
    assert target.events == []
    assert target.camera.applied == []
    assert target.stream_changes == 0


@pytest.mark.parametrize(
    ("patch", "key"),
    [
        ({"mqtt": {"ca": "/nonexistent/ca.pem"}}, "mqtt.ca"),
        ({"webrtc": {"ice_addresses": ["203.0.113.7"]}}, "webrtc.ice_addresses"),
        ({"webrtc": {"ice_servers": [{"urls": ["bogus:x"]}]}}, "webrtc.ice_servers[0].urls"),
        ({"camera": {"colour": "red"}}, "camera.colour"),
        ({"camera": {"width": 321}}, "camera.width"),
        ({"device": {"state_dir": "/tmp/elsewhere"}}, "device.state_dir"),
    ],
    ids=[
        "missing-ca",
        "foreign-ice-address",
        "bad-ice-url",
        "unknown-key",
        "odd-width",
        "state-dir",
    ],
)
async def test_a_change_that_would_fail_is_refused_naming_the_key_and_nothing_is_saved(
    target: Target, patch: dict[str, Any], key: str
) -> None:
    before = target.config
    with pytest.raises(ConfigError) as caught:
        await ConfigChanges(target).apply(patch)
    assert any(problem.startswith(key) for problem in caught.value.problems), caught.value.problems
    assert_nothing_done(target, before)


async def test_a_camera_that_refuses_the_change_leaves_nothing_saved(target: Target) -> None:
    before = target.config
    target.camera.refusal = StreamChangeError("camera testsrc: opening took over 10 s")
    with pytest.raises(StreamChangeError):
        await ConfigChanges(target).apply({"camera": {"width": 640, "height": 480}})
    assert_nothing_done(target, before)


async def test_live_keys_are_applied_saved_atomically_and_need_no_restart(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[Path] = []
    real_write = config_store.write_atomically

    def recording_write(path: Path, data: bytes, mode: int = 0o600) -> None:
        writes.append(path)
        real_write(path, data, mode)

    monkeypatch.setattr(config_store, "write_atomically", recording_write)
    patch = {
        "webrtc": {"max_viewers": 3, "ice_addresses": ["127.0.0.1"]},
        "access": {"operator": ["ops-*"]},
        "telemetry": {"interval": 5},
    }
    result = await ConfigChanges(target).apply(patch)

    [new] = target.applied
    assert new.webrtc.max_viewers == 3
    assert new.access.operator == ("ops-*",)
    assert new.telemetry.interval == 5
    assert target.config is new
    assert writes == [override_path(target)]
    assert saved(target) == patch
    assert override_path(target).stat().st_mode & 0o777 == 0o600
    assert [p.name for p in override_path(target).parent.iterdir()] == [OVERRIDE_FILE]
    # ice_addresses waits for the next start; the rest is live.
    assert target.events == [
        (
            "config.changed",
            {
                "keys": ["access", "telemetry", "webrtc"],
                "restart_required": ["webrtc.ice_addresses"],
            },
        )
    ]
    assert result["webrtc"]["max_viewers"] == 3
    assert target.camera.applied == []
    assert target.stream_changes == 0


async def test_restart_required_lists_exactly_the_restart_only_keys(target: Target) -> None:
    patch = {
        "mqtt": {"keepalive": 60, "topic_prefix": "site-a"},
        "webrtc": {"dtls_role": "passive", "max_viewers": 2, "offer_rate_limit": {"count": 2}},
        "logging": {"level": "debug"},
    }
    await ConfigChanges(target).apply(patch)
    assert target.events == [
        (
            "config.changed",
            {
                "keys": ["logging", "mqtt", "webrtc"],
                "restart_required": ["mqtt.keepalive", "mqtt.topic_prefix", "webrtc.dtls_role"],
            },
        )
    ]
    assert saved(target) == patch
    assert restart_keys({"camera": {"bitrate": 1}, "access": {"admin": []}}) == []


async def test_a_camera_change_goes_to_the_camera_before_it_is_saved(target: Target) -> None:
    order: list[str] = []
    camera_apply = target.camera.apply

    async def apply(wanted: CameraConfig) -> None:
        order.append("camera" if not override_path(target).exists() else "camera after save")
        await camera_apply(wanted)

    target.camera.apply = apply  # type: ignore[method-assign]
    await ConfigChanges(target).apply({"camera": {"width": 640, "height": 480}})
    assert order == ["camera"]
    assert target.camera.applied == [replace(target.config.camera, width=640, height=480)]
    assert target.config.camera.width == 640
    assert target.stream_changes == 1
    assert saved(target) == {"camera": {"width": 640, "height": 480}}
    assert target.events[0][1]["restart_required"] == []


async def test_two_concurrent_changes_do_not_undo_each_other(target: Target) -> None:
    changes = ConfigChanges(target)
    await asyncio.gather(
        changes.apply({"webrtc": {"max_viewers": 2}}),
        changes.apply({"telemetry": {"interval": 7}}),
    )
    assert target.config.webrtc.max_viewers == 2
    assert target.config.telemetry.interval == 7
    assert saved(target) == {"webrtc": {"max_viewers": 2}, "telemetry": {"interval": 7}}


async def test_a_slow_file_check_is_refused_not_waited_for(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = asyncio.Event()
    loop = asyncio.get_running_loop()

    def stuck_check(old: Config, new: Config) -> None:
        asyncio.run_coroutine_threadsafe(release.wait(), loop).result()

    monkeypatch.setattr(config_changes, "_validate", stuck_check)
    monkeypatch.setattr(config_changes, "CHECK_TIMEOUT", 0.05)
    before = target.config
    try:
        with pytest.raises(ConfigError, match="took too long"):
            async with asyncio.timeout(5):
                await ConfigChanges(target).apply({"mqtt": {"ca": "/mnt/nfs/ca.pem"}})
    finally:
        release.set()
    assert_nothing_done(target, before)


async def test_set_stream_applies_the_camera_change_then_saves_it(target: Target) -> None:
    result = await ConfigChanges(target).set_stream({"bitrate": 1_000_000, "framerate": 25.0})
    wanted = replace(target.config.camera, bitrate=1_000_000, framerate=25.0)
    assert target.camera.applied == [wanted]
    assert [c.camera for c in target.applied] == [wanted]
    assert target.stream_changes == 1
    assert saved(target) == {"camera": {"bitrate": 1_000_000, "framerate": 25.0}}
    assert result == {"width": 320, "height": 240, "bitrate": 1_000_000}


async def test_set_stream_with_nothing_new_touches_nothing(target: Target) -> None:
    before = target.config
    result = await ConfigChanges(target).set_stream({"bitrate": 500_000})
    assert result == {"width": 320, "height": 240, "bitrate": 500_000}
    assert_nothing_done(target, before)


async def test_set_stream_refused_by_the_camera_changes_nothing(target: Target) -> None:
    before = target.config
    target.camera.refusal = StreamChangeError("testsrc: framerate must be in (0, 240]")
    with pytest.raises(StreamChangeError):
        await ConfigChanges(target).set_stream({"width": 640})
    assert_nothing_done(target, before)
