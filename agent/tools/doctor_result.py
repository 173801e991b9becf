"""What one check of `edgecam doctor` found, and the device the checks look at."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from agent.config import Config
from agent.tools.doctor_host import Host, ServiceUser, Unit


class Status(StrEnum):
    """OK and WARN pass (exit 0); FAIL does not; SKIP: could not or need not be checked."""

    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "not checked"


@dataclass(frozen=True)
class CheckResult:
    """One line of the report: what was checked, what was found, and what to do about it."""

    name: str
    status: Status
    detail: str
    fix: str | None = None

    def to_json(self) -> dict[str, str | None]:
        return {
            "name": self.name,
            "status": self.status.value,
            "detail": self.detail,
            "fix": self.fix,
        }


@dataclass(frozen=True)
class Device:
    """The device under examination. ``config`` has every path it names resolved on this
    host (inside ``--root``); None when the file did not load."""

    host: Host
    config_path: Path
    config: Config | None
    unit: Unit | None
    user: ServiceUser | str  # a str says why there is no such user


def ok(name: str, detail: str) -> CheckResult:
    return CheckResult(name, Status.OK, detail)


def warn(name: str, detail: str, fix: str | None = None) -> CheckResult:
    return CheckResult(name, Status.WARN, detail, fix)


def fail(name: str, detail: str, fix: str | None = None) -> CheckResult:
    return CheckResult(name, Status.FAIL, detail, fix)


def skip(name: str, detail: str) -> CheckResult:
    return CheckResult(name, Status.SKIP, detail)
