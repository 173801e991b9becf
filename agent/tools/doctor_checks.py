"""`edgecam doctor`'s checks of the device itself: the installed unit and its user, the
camera and the encoder, the clock, and the service's state. One check per function; each
returns one line of the report and never raises."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import datetime
import functools
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Final

from cryptography import x509

from agent.config import Config
from agent.config.check import read_certificates
from agent.runtime.camera import probe_camera
from agent.tools.doctor_host import UNIT_DIRS, UNIT_NAME, ServiceUser
from agent.tools.doctor_result import CheckResult, Device, fail, ok, skip, warn
from hw.bounded import run_bounded
from hw.open import PROBE_TIMEOUT_S

TIMESYNC_FLAG: Final = Path("/run/systemd/timesync/synchronized")
SYSTEMD_RUNNING: Final = Path("/run/systemd/system")
TIME_ERROR: Final = 5  # adjtimex(2): the kernel's clock is not synchronised
SYSTEMCTL_TIMEOUT: Final = 10.0
INSTALL: Final = "install it: systemd/install.sh (or edgecam install)"


def check_unit(device: Device) -> CheckResult:
    unit = device.unit
    if unit is None:
        where = ", ".join(str(device.host.inside(d)) for d in UNIT_DIRS)
        return fail("unit", f"no {UNIT_NAME} in {where}", INSTALL)
    argv = unit.exec_start
    if not argv:
        return fail("unit", f"{unit.path}: no ExecStart=", f"reinstall the unit: {INSTALL}")
    program = device.host.inside(argv[0])
    if not program.is_file():
        return fail(
            "unit",
            f"{unit.path}: ExecStart= runs {argv[0]}, which is not there",
            f"reinstall the agent: {INSTALL}",
        )
    named = unit.config_path
    if named is not None and device.host.inside(named) != device.config_path:
        return warn(
            "unit",
            f"{unit.path} runs with --config {named}, not this file",
            f"edgecam doctor --config {named}",
        )
    return ok("unit", f"{unit.path}: {' '.join(argv)}")


def check_user(device: Device) -> CheckResult:
    user = device.user
    if isinstance(user, str):
        return fail(
            "user", user, "create it: useradd --system --no-create-home --groups video edgecam"
        )
    return ok("user", f"runs as {user.name} (uid {user.uid}, groups {', '.join(user.group_names)})")


def check_camera(config: Config) -> CheckResult:
    what = f"{config.camera.source} {config.camera.path}".strip()
    try:
        # probe_source bounds each step itself; this bound covers a step that forgets to.
        problems = run_bounded(lambda: probe_camera(config), PROBE_TIMEOUT_S + 2, "camera")
    except ValueError as exc:
        problems = [str(exc)]
    if problems:
        return fail(
            "camera",
            f"{what}: {problems[0]}",
            "fix camera.source / camera.path (edgecam check lists every problem)",
        )
    return ok("camera", f"{what} opens")


def _open_encoder(config: Config, codec: str) -> None:
    from hw.x264 import open_h264_encoder

    cam = config.camera
    rate = Fraction(cam.framerate).limit_denominator(1001)
    open_h264_encoder(cam.width, cam.height, rate, cam.bitrate, 60, codec=codec)


def _encoders(config: Config) -> tuple[str, ...] | CheckResult:
    source = config.camera.source
    if source == "file":
        return skip("encoder", "not needed: the file is H.264 already")
    if source == "picamera2":
        from hw.picamera2src import has_hardware_encoder, import_picamera2

        try:
            if has_hardware_encoder(import_picamera2()):
                return ok("encoder", "the hardware H.264 encoder (VC4)")
        except (ValueError, ImportError) as exc:
            return skip("encoder", f"picamera2 does not load (see the camera line): {exc}")
        return ("libx264",)  # a Pi 5: picamera2's libav encoder
    if source == "v4l2":
        from hw.v4l2src import ENCODERS

        return tuple(ENCODERS)
    return ("libx264",)


def check_encoder(config: Config) -> CheckResult:
    encoders = _encoders(config)
    if isinstance(encoders, CheckResult):
        return encoders
    cam = config.camera
    errors = []
    for codec in encoders:
        try:
            run_bounded(functools.partial(_open_encoder, config, codec), PROBE_TIMEOUT_S, codec)
        except Exception as exc:  # av raises its own zoo of errors: each is a reason
            errors.append(f"{codec}: {exc}")
            continue
        return ok("encoder", f"{codec} opens at {cam.width}x{cam.height} {cam.bitrate} bit/s")
    return fail(
        "encoder",
        f"no H.264 encoder opens ({'; '.join(errors)})",
        "reinstall the 'av' wheel from PyPI (it carries libx264)",
    )


def kernel_clock_synchronized() -> bool | None:
    """adjtimex(2) with no change asked: whether an NTP client (timesyncd, chrony, ntpd)
    has set the kernel clock synchronised; None where the call is not there."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    except OSError:
        return None
    timex = ctypes.create_string_buffer(512)  # larger than struct timex; modes = 0: read
    state = libc.adjtimex(timex)
    return None if state < 0 else state != TIME_ERROR


def clock_synchronized() -> bool | None:
    if TIMESYNC_FLAG.exists():
        return True
    return kernel_clock_synchronized()


def _certificates(config: Config) -> list[x509.Certificate]:
    out: list[x509.Certificate] = []
    for path in (config.mqtt.cert, config.mqtt.ca):
        with contextlib.suppress(ValueError):  # the certificate lines say why
            out += read_certificates(path) if path and config.mqtt.tls else []
    return out


def check_clock(
    config: Config, synchronized: bool | None, now: datetime.datetime | None = None
) -> CheckResult:
    """Red when the clock is before a certificate's notBefore (TLS cannot work); a warning
    when no NTP client has synchronised it."""
    now = now or datetime.datetime.now(datetime.UTC)
    certs = _certificates(config)
    earliest = max((c.not_valid_before_utc for c in certs), default=None)
    ntp = "systemctl enable --now systemd-timesyncd (or timedatectl set-ntp true)"
    if earliest is not None and now < earliest:
        return fail(
            "clock",
            f"it is {now:%Y-%m-%d %H:%M} UTC here, before the certificates' "
            f"notBefore {earliest:%Y-%m-%d %H:%M} UTC: TLS will refuse them",
            ntp,
        )
    if synchronized is None:
        return warn("clock", f"{now:%Y-%m-%d %H:%M} UTC; synchronisation state unknown", ntp)
    if not synchronized:
        return warn(
            "clock",
            f"{now:%Y-%m-%d %H:%M} UTC, not synchronised by NTP: a Pi has "
            "no battery clock, and TLS fails once it drifts off the certificates' "
            "dates",
            ntp,
        )
    return ok("clock", f"{now:%Y-%m-%d %H:%M} UTC, synchronised")


def check_service(device: Device) -> CheckResult:
    if device.host.root is not None:
        return skip("service", "--root: the running system's service is not this install")
    systemctl = shutil.which("systemctl")
    if systemctl is None or not SYSTEMD_RUNNING.is_dir():
        return skip("service", "systemd is not running here")
    try:
        done = subprocess.run(
            [systemctl, "is-active", "edgecam"],
            capture_output=True,
            text=True,
            timeout=SYSTEMCTL_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return fail("service", f"systemctl is-active edgecam: {exc}", None)
    state = done.stdout.strip() or done.stderr.strip()
    if state == "active":
        return ok("service", "edgecam is active")
    return fail(
        "service",
        f"edgecam is {state}",
        "systemctl enable --now edgecam; why it stopped: journalctl -u edgecam -b",
    )


def user_of(device: Device) -> ServiceUser | None:
    return device.user if isinstance(device.user, ServiceUser) else None
