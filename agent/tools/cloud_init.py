"""The cloud-init files of a provisioning bundle: `user-data`, `meta-data`, `network-config`.

cloud-init's NoCloud data source reads them from the boot partition of a Raspberry Pi OS card
(the FAT partition mounted at /boot/firmware). Every scalar is written as a JSON string, which
double-quoted with every character outside printable ASCII escaped, so an SSID or path with
':' '#', quotes or any Unicode stays one value and the files stay plain ASCII.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Final

# Where the boot partition is mounted on Raspberry Pi OS since Bookworm.
BOOT_MOUNT: Final = "/boot/firmware"
BUNDLE_DIR: Final = "edgecam"


def _q(text: str) -> str:
    """A YAML double-quoted scalar (YAML's \\U escape covers what JSON's \\u cannot)."""
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif " " <= char <= "~":
            out.append(char)
        else:
            out.append(f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


@dataclass(frozen=True)
class Wifi:
    """A Wi-Fi network for the first boot (netplan v2 `wifis:` as cloud-init renders it)."""

    ssid: str
    psk: str
    country: str | None = None


def user_data(device_id: str, hostname: str | None) -> str:
    """#cloud-config that installs the bundle's agent at first boot through its install.sh.

    The user, the venv, the files and the unit are made by install.sh (the same script an
    already running Pi uses), so the two paths cannot drift apart; cloud-init adds only what
    the OS must have first and runs it once."""
    script = f"{BOOT_MOUNT}/{BUNDLE_DIR}/install.sh"
    lines = [
        "#cloud-config",
        f"# Written by edgecam provision for device {device_id}. At first boot, install.sh",
        "# (beside this file, in edgecam/) creates the system user edgecam in group video, the",
        "# venv /opt/edgecam, /etc/edgecam with the config and certificates, and starts",
        "# edgecam.service. Its progress is in /var/log/cloud-init-output.log.",
    ]
    if hostname is not None:
        lines += [f"hostname: {_q(hostname)}", "preserve_hostname: false"]
    lines += [
        "# python3-venv for the agent's venv; python3-picamera2 (with libcamera) is what the",
        "# venv sees through --system-site-packages. Both ship with Raspberry Pi OS already.",
        "package_update: true",
        "packages:",
        "  - python3-venv",
        "  - python3-picamera2",
        "runcmd:",
        f"  - [bash, {_q(script)}]",
        "",
    ]
    return "\n".join(lines)


def meta_data(device_id: str, hostname: str | None) -> str:
    """NoCloud meta-data: a fresh instance-id, so a re-flashed card runs its first boot again."""
    lines = [f"instance-id: {_q(f'edgecam-{device_id}-{secrets.token_hex(4)}')}"]
    if hostname is not None:
        lines.append(f"local-hostname: {_q(hostname)}")
    return "\n".join([*lines, ""])


def network_config(wifi: Wifi) -> str:
    """netplan v2 with one Wi-Fi network on wlan0 (DHCP); wired Ethernet keeps the OS default."""
    lines = [
        "network:",
        "  version: 2",
        "  wifis:",
        "    wlan0:",
        "      dhcp4: true",
        "      optional: true",
    ]
    if wifi.country is not None:
        lines.append(f"      regulatory-domain: {_q(wifi.country)}")
    lines += [
        "      access-points:",
        f"        {_q(wifi.ssid)}:",
        f"          password: {_q(wifi.psk)}",
        "",
    ]
    return "\n".join(lines)
