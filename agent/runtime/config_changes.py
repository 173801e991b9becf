"""Changes made over the API (``config.set``, ``stream.set``): validated as ``edgecam check``
would, applied live where they can be, and only then saved for the next start.

A change the device cannot carry out must never be left on disk to fail the boot: files it
names must open, ICE addresses must be this machine's, a camera change must start. What
only the next start can prove (a broker URL, say) is covered by ``known_good``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import replace
from pathlib import Path
from typing import Any, Final, Protocol

from agent.config import Config, ConfigError, apply_patch, redacted, save_overrides
from agent.config.check import check_files
from agent.control.api import BadParamsError
from agent.runtime.camera import CameraSupervisor
from agent.runtime.daemon_thread import run_abandonable

logger = logging.getLogger(__name__)

# Sections and webrtc keys that apply at once; every other key waits for the next start.
LIVE_SECTIONS: Final = frozenset({"camera", "access", "telemetry", "logging"})
LIVE_WEBRTC_KEYS: Final = frozenset({"max_viewers", "max_sessions_per_client", "offer_rate_limit"})
CHECK_TIMEOUT: Final = 5.0


class ChangeTarget(Protocol):
    """What a change acts on: the running agent."""

    config: Config
    camera: CameraSupervisor

    def config_applied(self, new: Config) -> None: ...

    def stream_changed(self) -> None: ...

    def stream_info(self) -> dict[str, Any]: ...

    def publish_event(self, name: str, **fields: Any) -> None: ...


def _local_address(address: str) -> bool:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.bind((address, 0))
    except OSError:
        return False
    return True


def _validate(old: Config, new: Config) -> None:
    """Refuse, naming the key, what would fail the next start or every viewer."""
    # ICE server URLs, stuns: and TURN credentials were checked by apply_patch already.
    foreign = [a for a in new.webrtc.ice_addresses if not _local_address(a)]
    if foreign:
        raise ConfigError(
            [f"webrtc.ice_addresses: {', '.join(foreign)}: not an address of this device"]
        )
    if new.mqtt != old.mqtt or new.device != old.device:
        errors = [p for p in check_files(new) if p.startswith("error:")]
        if errors:
            raise ConfigError([p.removeprefix("error: ") for p in errors])


def restart_keys(patch: dict[str, Any]) -> list[str]:
    """The dotted keys of ``patch`` that take effect only at the next start."""
    return sorted(
        f"{section}.{key}"
        for section, keys in patch.items()
        if isinstance(keys, dict)
        for key in keys
        if section not in LIVE_SECTIONS and not (section == "webrtc" and key in LIVE_WEBRTC_KEYS)
    )


class ConfigChanges:
    """One change at a time, each computed from the config the one before left: two admins
    changing different keys must not undo each other."""

    def __init__(self, target: ChangeTarget) -> None:
        self._target = target
        self._lock = asyncio.Lock()

    @property
    def _state_dir(self) -> Path:
        return Path(self._target.config.device.state_dir)

    def redacted(self) -> dict[str, Any]:
        return redacted(self._target.config)

    async def set_stream(self, changes: dict[str, Any]) -> dict[str, Any]:
        target = self._target
        async with self._lock:
            wanted = replace(target.config.camera, **changes)
            if wanted != target.config.camera:
                await target.camera.apply(wanted)  # StreamChangeError: nothing changed
                target.config_applied(replace(target.config, camera=wanted))
                target.stream_changed()
                try:
                    await asyncio.to_thread(save_overrides, self._state_dir, {"camera": changes})
                except (OSError, ValueError) as exc:
                    logger.warning("stream change applied but not saved: %s", exc)
            return target.stream_info()

    async def set_controls(self, values: dict[str, Any]) -> dict[str, Any]:
        """camera.set: apply live, then save, so the camera starts with them next time."""
        target = self._target
        async with self._lock:
            try:
                applied = await target.camera.set_controls(values)
            except ValueError as exc:
                raise BadParamsError(f"params.{exc}") from None
            controls = {**dict(target.config.camera.controls), **applied}
            camera = replace(target.config.camera, controls=tuple(controls.items()))
            target.config_applied(replace(target.config, camera=camera))
            target.camera.camera = camera
            try:
                await asyncio.to_thread(
                    save_overrides, self._state_dir, {"camera": {"controls": controls}}
                )
            except (OSError, ValueError) as exc:
                logger.warning("camera controls applied but not saved: %s", exc)
        target.publish_event("camera.controls", values=applied)
        return applied

    async def apply(self, patch: dict[str, Any]) -> dict[str, Any]:
        """Validate, apply what can be applied live, and only then save."""
        target = self._target
        async with self._lock:
            old = target.config
            new = apply_patch(old, patch)  # ConfigError names the key
            try:
                await run_abandonable(
                    _validate, old, new, timeout=CHECK_TIMEOUT, name="config-check"
                )
            except TimeoutError:
                raise ConfigError(["checking the files this change names took too long"]) from None
            if new.camera != old.camera:
                await target.camera.apply(new.camera)  # StreamChangeError: nothing saved
            saved = True
            try:
                await asyncio.to_thread(save_overrides, self._state_dir, patch)
            except OSError as exc:
                # In force now (the camera may already run with it), lost at the next start.
                logger.error("config change applied but not saved: %s", exc)
                saved = False
            target.config_applied(new)
            if new.camera != old.camera:
                target.stream_changed()
        target.publish_event(
            "config.changed",
            keys=sorted(patch),
            restart_required=restart_keys(patch),
            **({} if saved else {"saved": False}),  # said only when the save failed
        )
        return redacted(new)
