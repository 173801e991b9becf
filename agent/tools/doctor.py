"""`edgecam doctor`: is this device ready to stream? One line per check, green or red, each
red one with what to fix; exit 0 when nothing is red.

Checks, in the order a fault would show: the unit and its user, the config, the camera and
its encoder, the clock, the certificate (dates, CN = device.id, key), the broker's port and a
TLS handshake with the device's certificate, the ownership and modes of every file the
service reads, and the service's state. ``root`` examines an install made under a prefix or
a chroot: every absolute path of the unit and the config is taken inside it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from agent.config import Config, ConfigError, load_config
from agent.tools import doctor_checks as device_checks
from agent.tools import doctor_pki as pki_checks
from agent.tools.doctor_files import check_files
from agent.tools.doctor_host import Host, service_user
from agent.tools.doctor_result import CheckResult, Device, Status, fail, ok, skip

COLOURS: Final = {Status.OK: "32", Status.WARN: "33", Status.FAIL: "31", Status.SKIP: "2"}
LABELS: Final = {Status.OK: " ok ", Status.WARN: "warn", Status.FAIL: "FAIL", Status.SKIP: " -- "}


@dataclass(frozen=True)
class DoctorReport:
    """Every check's result, in the order they ran."""

    results: tuple[CheckResult, ...]

    @property
    def ok(self) -> bool:
        """Nothing red (warnings and unchecked lines pass)."""
        return all(r.status is not Status.FAIL for r in self.results)

    def named(self, name: str) -> CheckResult:
        return next(r for r in self.results if r.name == name)

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if r.status is Status.FAIL]

    def lines(self, colour: bool = False) -> Iterator[str]:
        width = max((len(r.name) for r in self.results), default=0)
        for r in self.results:
            label = LABELS[r.status]
            if colour:
                label = f"\033[{COLOURS[r.status]}m{label}\033[0m"
            fix = f"; fix: {r.fix}" if r.fix and r.status in (Status.FAIL, Status.WARN) else ""
            yield f"[{label}] {r.name:<{width}}  {r.detail}{fix}"

    def to_json(self) -> str:
        return json.dumps({"ok": self.ok, "checks": [r.to_json() for r in self.results]})


def _resolved(config: Config, host: Host) -> Config:
    """``config`` with every path it names as this host reaches it."""

    def inside(path: str | None) -> str | None:
        return str(host.inside(path)) if path else path

    mqtt = dataclasses.replace(
        config.mqtt,
        ca=inside(config.mqtt.ca),
        cert=inside(config.mqtt.cert),
        key=inside(config.mqtt.key),
    )
    camera = dataclasses.replace(config.camera, path=inside(config.camera.path) or "")
    device = dataclasses.replace(config.device, state_dir=str(host.inside(config.device.state_dir)))
    return dataclasses.replace(config, mqtt=mqtt, camera=camera, device=device)


def _load(path: Path, host: Host) -> tuple[Config | None, CheckResult]:
    try:
        # The override file lives in state_dir, which a root would have to resolve first.
        config = load_config(path, state_dir_overrides=host.root is None)
    except ConfigError as exc:
        more = len(exc.problems) - 1
        rest = f" ({more} more)" if more else ""
        return None, fail("config", f"{exc.problems[0]}{rest}", f"edgecam check --config {path}")
    return _resolved(config, host), ok("config", f"{path}: valid")


def _config_checks(device: Device) -> list[CheckResult]:
    config = device.config
    if config is None:
        return [skip("camera, clock, broker", "the config did not load")]
    broker = pki_checks.check_broker(config)
    return [
        device_checks.check_camera(config),
        device_checks.check_encoder(config),
        device_checks.check_clock(config, device_checks.clock_synchronized()),
        pki_checks.check_ca(config),
        pki_checks.check_validity(config),
        pki_checks.check_cn(config),
        pki_checks.check_key(config),
        broker,
        pki_checks.check_tls(config, broker),
    ]


def run_doctor(config: Path, root: Path | None) -> DoctorReport:
    """Every check for the device whose config is `config` (a path of the device: inside
    `root` when one is given)."""
    host = Host(root)
    config_path = host.inside(config)
    unit = host.find_unit()
    loaded, config_line = _load(config_path, host)
    device = Device(host, config_path, loaded, unit, service_user(host, unit))
    results = [device_checks.check_unit(device), device_checks.check_user(device), config_line]
    results += _config_checks(device)
    results += check_files(device)
    results.append(device_checks.check_service(device))
    return DoctorReport(tuple(results))


def main(config: str, root: str | None, as_json: bool) -> int:
    """`edgecam doctor`: print the report; 0 when nothing is red, 1 otherwise."""
    report = run_doctor(Path(config), Path(root) if root else None)
    if as_json:
        print(report.to_json())
    else:
        colour = sys.stdout.isatty() and "NO_COLOR" not in os.environ
        for line in report.lines(colour):
            print(line)
    return 0 if report.ok else 1
