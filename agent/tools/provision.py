"""`edgecam provision DEVICE_ID`: a device's certificate, its edgecam.toml and the bundle for
the boot partition of a freshly flashed Raspberry Pi OS card.

Where the private key lives: no server answers a device at first boot, so a device that made
its own key could not get it signed without a second visit to every Pi (a CSR carried back
and a certificate carried in). For a fleet flashed once and never touched again, provision
makes the key and certificate here and the key's one copy travels on the card
(OUT/boot/edgecam/device.key): at first boot install.sh moves it to /etc/edgecam/device.key
(0640 root:edgecam, readable by the service alone) and shreds the boot-partition copy. The
CA directory keeps only the certificate. `--key-here` keeps a second copy in OUT/device.key
(0600), for installing onto an already running Pi by hand or re-flashing the same device.

Layout of OUT:
    edgecam.toml, ca.pem, device.pem[, device.key]      what /etc/edgecam receives
    boot/user-data, boot/meta-data[, boot/network-config]  cloud-init (NoCloud) for first boot
    boot/edgecam/  install.sh, edgecam.toml, ca.pem, device.pem, device.key[, edgecam-*.whl]
                   firstrun.sh, edgecam-firstboot.service: first boot on Bookworm images,
                   which ignore user-data (cmdline.txt runs firstrun.sh; see the README)
"""

from __future__ import annotations

import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import tomli_w
from cryptography.hazmat.primitives import serialization

from agent.config.store import write_atomically
from agent.tools import cloud_init
from agent.tools.pki import CA_CERT, CA_KEY, DEFAULT_LEAF_DAYS, PkiError, issue_without_key, load_ca

ETC: Final = "/etc/edgecam"
CAMERAS: Final = ("picamera2", "v4l2", "testsrc")
FIRSTBOOT_UNIT: Final = "edgecam-firstboot.service"
_HOSTNAME: Final = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_BROKER: Final = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[^:\[\]/\s]+)(?::(?P<port>\d{1,5}))?")


@dataclass(frozen=True)
class ProvisionOptions:
    """What `edgecam provision` was asked for."""

    device_id: str
    ca_dir: Path
    broker: str
    out: Path
    key_here: bool = False
    wifi: cloud_init.Wifi | None = None
    hostname: str | None = None
    wheel: Path | None = None
    camera: str = "picamera2"
    days: int = DEFAULT_LEAF_DAYS
    topic_prefix: str = "edgecam"


@dataclass(frozen=True)
class Provisioned:
    """What was written: every file, and the boot-partition directory to copy onto the card."""

    files: list[Path]
    boot: Path
    not_after: str


def broker_url(broker: str) -> str:
    """HOST[:PORT] -> mqtts://HOST:PORT (8883 by default); ValueError naming the problem."""
    match = _BROKER.fullmatch(broker)
    if match is None:
        raise ValueError(f"--broker {broker!r}: expected HOST or HOST:PORT")
    port = int(match["port"] or 8883)
    if not 1 <= port <= 65535:
        raise ValueError(f"--broker {broker!r}: port outside 1..65535")
    return f"mqtts://{match['host']}:{port}"


def default_hostname(device_id: str) -> str | None:
    """The device id as a host name when it is one (RFC 1123 label), else None."""
    name = device_id.lower()
    return name if _HOSTNAME.fullmatch(name) else None


def check_hostname(name: str) -> str:
    if not _HOSTNAME.fullmatch(name):
        raise ValueError(f"--hostname {name!r}: 1 to 63 of a-z 0-9 -, not starting or ending in -")
    return name


def config_text(options: ProvisionOptions) -> str:
    """The device's edgecam.toml: only what differs from the defaults, with the example's
    [access] patterns (the ones `edgecam broker-config` accounts are checked against)."""
    document = {
        "device": {"id": options.device_id, "state_dir": "/var/lib/edgecam"},
        "mqtt": {
            "url": broker_url(options.broker),
            "ca": f"{ETC}/ca.pem",
            "cert": f"{ETC}/device.pem",
            "key": f"{ETC}/device.key",
            "topic_prefix": options.topic_prefix,
        },
        "camera": {"source": options.camera},
        "access": {"viewer": ["viewer-*"], "operator": ["ops-*"], "admin": ["admin-*"]},
    }
    header = (
        f"# edgecam.toml for device {options.device_id}, written by edgecam provision.\n"
        "# Every key is explained in /opt/edgecam/share/edgecam/config/edgecam.example.toml;\n"
        "# check a change with: /opt/edgecam/bin/edgecam check --config /etc/edgecam/edgecam.toml\n"
    )
    return header + tomli_w.dumps(document)


def shipped_file(relative: str) -> Path:
    """A file of the project (systemd/install.sh): from the installed wheel's data
    (<prefix>/share/edgecam/) or, in a checkout, from the source tree."""
    for base in (Path(sys.prefix) / "share" / "edgecam", Path(__file__).resolve().parents[2]):
        if (base / relative).is_file():
            return base / relative
    raise PkiError(f"{relative}: not found in {sys.prefix}/share/edgecam or the checkout")


def _check(options: ProvisionOptions) -> None:
    broker_url(options.broker)  # ValueError before anything is written
    if options.camera not in CAMERAS:
        raise ValueError(f"--camera {options.camera!r}: one of {', '.join(CAMERAS)}")
    if options.out.exists() and any(options.out.iterdir()):
        raise PkiError(f"{options.out} is not empty: refusing to overwrite a device's bundle")
    if options.wheel is not None and not options.wheel.is_file():
        raise PkiError(f"--wheel {options.wheel}: no such file")


def provision(options: ProvisionOptions) -> Provisioned:
    """Issue the device certificate and write OUT (see the module docstring). Raises PkiError
    or ValueError with one line for the user; the key is never printed or logged."""
    _check(options)
    ca = load_ca(options.ca_dir / CA_CERT, options.ca_dir / CA_KEY)
    cert, key = issue_without_key(ca, options.device_id, out_dir=options.ca_dir, days=options.days)
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    ca_pem = (options.ca_dir / CA_CERT).read_bytes()
    config = config_text(options).encode()
    boot = options.out / "boot"
    bundle = boot / cloud_init.BUNDLE_DIR
    bundle.mkdir(mode=0o700, parents=True, exist_ok=True)
    written: list[Path] = []

    def put(path: Path, data: bytes, mode: int = 0o644) -> None:
        write_atomically(path, data, mode=mode)
        written.append(path)

    for directory in (options.out, bundle):
        put(directory / "edgecam.toml", config, 0o600)  # may later hold an MQTT password
        put(directory / "ca.pem", ca_pem)
        put(directory / "device.pem", cert_pem)
    put(bundle / "device.key", key, 0o600)
    if options.key_here:
        put(options.out / "device.key", key, 0o600)
    put(bundle / "install.sh", shipped_file("systemd/install.sh").read_bytes(), 0o755)
    # Bookworm images ignore user-data: cmdline.txt runs firstrun.sh instead (README).
    put(bundle / "firstrun.sh", shipped_file("systemd/firstrun.sh").read_bytes(), 0o755)
    unit = shipped_file(f"systemd/{FIRSTBOOT_UNIT}").read_bytes()
    put(bundle / FIRSTBOOT_UNIT, unit)
    if options.wheel is not None:
        target = bundle / options.wheel.name
        shutil.copyfile(options.wheel, target)
        written.append(target)
    hostname = options.hostname or default_hostname(options.device_id)
    put(boot / "user-data", cloud_init.user_data(options.device_id, hostname).encode())
    put(boot / "meta-data", cloud_init.meta_data(options.device_id, hostname).encode())
    if options.wifi is not None:
        put(boot / "network-config", cloud_init.network_config(options.wifi).encode(), 0o600)
    return Provisioned(written, boot, f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")
