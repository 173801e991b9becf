"""The command line of `edgecam provision` (the work is in agent/tools/provision.py)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from agent.tools.args import fail, integer

DESCRIPTION = (
    "Write OUT/ for one device: edgecam.toml (device.id, mqtts:// broker, certificates under "
    "/etc/edgecam), ca.pem, device.pem (issued now by the CA in --ca-dir, CN = DEVICE_ID), and "
    "OUT/boot/: cloud-init user-data and meta-data (+ network-config with --wifi-ssid) and "
    "edgecam/ with install.sh and the files it installs. Copy the contents of OUT/boot/ onto "
    "the boot partition of a freshly flashed Raspberry Pi OS card; at first boot install.sh "
    "makes the user edgecam (group video), the venv /opt/edgecam, /etc/edgecam and the "
    "service, and starts it. The private key: a device cannot get a key it made signed "
    "without a second visit, so the key is made here and its one copy goes on the card "
    "(OUT/boot/edgecam/device.key, 0600): first boot moves it to /etc/edgecam/device.key "
    "(0640 root:edgecam) and shreds the card's copy; the CA directory keeps only the "
    "certificate. The key is never printed."
)


def _add_wifi(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wifi-ssid", metavar="SSID", help="Wi-Fi for the first boot (default none)"
    )
    parser.add_argument(
        "--wifi-psk-file",
        metavar="PATH",
        help="a file holding the Wi-Fi passphrase (kept off the command line and shell history)",
    )
    parser.add_argument(
        "--wifi-country", metavar="CC", help="Wi-Fi regulatory country, e.g. GB (default: unset)"
    )


def add_provision(commands: Any) -> None:
    parser = commands.add_parser(
        "provision",
        help="certificate, config and first-boot bundle for one Raspberry Pi",
        description=DESCRIPTION,
    )
    parser.add_argument("device_id", metavar="DEVICE_ID", help="device.id and certificate CN")
    parser.add_argument(
        "--ca-dir", required=True, metavar="DIR", help="the CA directory of edgecam ca init"
    )
    parser.add_argument(
        "--broker",
        required=True,
        metavar="HOST[:PORT]",
        help="the broker's TLS listener as the device reaches it (default port 8883)",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="where to write (new or empty)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--key-on-device",
        dest="key_here",
        action="store_false",
        help="the key's only copy goes onto the card, for the device (the default)",
    )
    where.add_argument(
        "--key-here",
        dest="key_here",
        action="store_true",
        help="also keep the key in OUT/device.key (0600), e.g. to install it on a running Pi",
    )
    parser.set_defaults(key_here=False)
    _add_wifi(parser)
    parser.add_argument(
        "--hostname", help="the Pi's host name (default: DEVICE_ID when it is a valid one)"
    )
    parser.add_argument(
        "--wheel",
        metavar="PATH",
        help="the edgecam wheel to put on the card (made by: pip wheel --no-deps .); "
        "without it, copy one into OUT/boot/edgecam/ before flashing",
    )
    parser.add_argument(
        "--camera",
        choices=["picamera2", "v4l2", "testsrc"],
        default="picamera2",
        help="camera.source (default picamera2)",
    )
    parser.add_argument(
        "--days", type=integer(1, 36500), default=825, help="certificate validity (default 825)"
    )
    parser.add_argument(
        "--topic-prefix", default="edgecam", help="mqtt.topic_prefix (default edgecam)"
    )


def _wifi(args: argparse.Namespace, prog: str) -> Any:
    from agent.tools.cloud_init import Wifi

    if args.wifi_ssid is None:
        if args.wifi_psk_file is not None or args.wifi_country is not None:
            fail(prog, "--wifi-psk-file and --wifi-country need --wifi-ssid")
        return None
    if not 1 <= len(args.wifi_ssid.encode()) <= 32:
        fail(prog, f"--wifi-ssid {args.wifi_ssid!r}: an SSID has 1 to 32 bytes")
    if args.wifi_psk_file is None:
        fail(prog, "--wifi-ssid needs --wifi-psk-file")
    try:
        psk = Path(args.wifi_psk_file).read_text().strip()
    except OSError as exc:
        fail(prog, f"{args.wifi_psk_file}: {exc.strerror}")
    if not 8 <= len(psk) <= 63:
        fail(prog, f"{args.wifi_psk_file}: a WPA passphrase has 8 to 63 characters")
    return Wifi(args.wifi_ssid, psk, args.wifi_country)


def run_provision(args: argparse.Namespace) -> int:
    from agent.tools import provision
    from agent.tools.pki import PkiError

    prog = "edgecam provision"
    try:
        hostname = None if args.hostname is None else provision.check_hostname(args.hostname)
        options = provision.ProvisionOptions(
            device_id=args.device_id,
            ca_dir=Path(args.ca_dir),
            broker=args.broker,
            out=Path(args.out),
            key_here=args.key_here,
            wifi=_wifi(args, prog),
            hostname=hostname,
            wheel=None if args.wheel is None else Path(args.wheel),
            camera=args.camera,
            days=args.days,
            topic_prefix=args.topic_prefix,
        )
        done = provision.provision(options)
    except (PkiError, ValueError) as exc:
        fail(prog, str(exc))
    except OSError as exc:
        fail(prog, f"{exc.filename}: {exc.strerror}")
    for path in done.files:
        print(f"wrote {path}")
    print(f"certificate expires {done.not_after}")
    if options.wheel is None:
        print(f"note: no --wheel: copy edgecam-*.whl into {done.boot / 'edgecam'} before flashing")
    print(f"next: copy everything in {done.boot}/ onto the card's boot partition")
    return 0
