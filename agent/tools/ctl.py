"""`edgecam ctl`: list, call, snapshot and follow devices over the MQTT contract.

Built on `agent.client.Fleet`; the interface is part of the public contract (PROTOCOL.md A6).
Exit status: 0 when every device answered without error, 1 when any failed (or the broker
refused us), 2 for a usage error, 130 after Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import fnmatch
import json
import sys
from pathlib import Path
from typing import Any

from agent.client import CallResult, Fleet, FleetError, is_pattern
from agent.client.fleet import DEFAULT_CONCURRENCY, DEFAULT_TIMEOUT
from agent.client.profile import DEFAULT_FILE, resolve_settings
from agent.tools.ctl_output import (
    compact,
    devices_table,
    message_line,
    parse_assignments,
    result_row,
    summary,
)

EPILOG = f"""connection settings, first found wins: the options above; the variables
EDGECAM_BROKER, EDGECAM_CA, EDGECAM_CERT, EDGECAM_KEY, EDGECAM_PREFIX, EDGECAM_CLIENT_ID,
EDGECAM_ALLOW_INSECURE, EDGECAM_USERNAME, EDGECAM_PASSWORD; the profile (--profile or
EDGECAM_PROFILE, else [default]) in {DEFAULT_FILE} (EDGECAM_CLIENT_CONFIG names another
file), whose tables take the agent's [mqtt] keys: url, ca, cert, key, topic_prefix,
client_id, allow_insecure, username, password, keepalive.

TARGET is a device id, a glob such as 'cam-*' (quote it), or 'all'; globs match online
devices only. exit status: 0 if every device answered without error, else 1."""


def _connection_options(parser: argparse.ArgumentParser, *, again: bool = False) -> None:
    """On `ctl` itself and, again, on each command (`again`: not given there leaves the
    value from before the command), so that they may stand before or after it."""
    group = parser.add_argument_group("connection (before or after the command)")
    if again:
        group.argument_default = argparse.SUPPRESS
    group.add_argument("--broker", metavar="URL", help="mqtts://host:port or wss://host/path")
    group.add_argument("--ca", metavar="FILE", help="CA that signed the broker's certificate")
    group.add_argument("--cert", metavar="FILE", help="client certificate (its CN is the id)")
    group.add_argument("--key", metavar="FILE", help="private key of --cert")
    group.add_argument("--prefix", metavar="P", help="topic prefix (default edgecam)")
    group.add_argument(
        "--client-id", metavar="ID", help="MQTT client id (default: the certificate's CN)"
    )
    group.add_argument(
        "--allow-insecure", action="store_true", help="allow mqtt:// and ws:// (no TLS)"
    )
    group.add_argument("--profile", metavar="NAME", help=f"a table of {DEFAULT_FILE}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgecam ctl",
        description="Control a fleet of edgecam devices over MQTT (JSON-RPC 2.0).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _connection_options(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    devices = commands.add_parser("devices", help="every device from retained status")
    _connection_options(devices, again=True)
    devices.add_argument("--json", action="store_true", help="one JSON object per line")

    call = commands.add_parser("call", help="call a method on one or many devices")
    call.add_argument("target", metavar="TARGET", help="device id, glob ('cam-*') or all")
    call.add_argument("method", metavar="METHOD", help="e.g. device.status, stream.set")
    call.add_argument(
        "params",
        nargs="*",
        metavar="key=value",
        help="params; values are typed as JSON (bitrate=800000 is an int), else strings",
    )
    call.add_argument("--params", dest="params_json", metavar="JSON", help="params as JSON")
    _call_options(call)
    _connection_options(call, again=True)

    snapshot = commands.add_parser("snapshot", help="write a JPEG per device")
    snapshot.add_argument("target", metavar="TARGET", help="device id, glob or all")
    snapshot.add_argument(
        "-o",
        "--output",
        default=".",
        metavar="DIR|FILE",
        help="a directory (DEVICE.jpg in it; default .) or, for one device, a file name",
    )
    snapshot.add_argument(
        "--quality",
        type=int,
        metavar="1..100",
        help="JPEG quality, 1..100 (default 85, the device's)",
    )
    _call_options(snapshot)
    _connection_options(snapshot, again=True)

    for kind in ("events", "telemetry"):
        follow = commands.add_parser(kind, help=f"follow P/D/{kind}, one line each, to Ctrl-C")
        follow.add_argument(
            "target", nargs="?", default="all", metavar="TARGET", help="as for call (default all)"
        )
        follow.add_argument("--json", action="store_true", help="one JSON object per line")
        _connection_options(follow, again=True)
    return parser


def _call_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON object per device")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="S",
        help=f"seconds to wait for each device (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--parallel",
        type=int,
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help=f"devices called at once (default {DEFAULT_CONCURRENCY})",
    )


def _err(text: str) -> None:
    print(f"error: {text}", file=sys.stderr)


async def _devices(fleet: Fleet, args: argparse.Namespace) -> int:
    devices = await fleet.devices()
    if args.json:
        for device in devices:
            print(compact(device.to_json()))
    elif devices:
        print(devices_table(devices))
    else:
        print("no devices")
    return 0


async def _fan_out(
    fleet: Fleet, args: argparse.Namespace, method: str, params: dict[str, Any]
) -> tuple[list[CallResult], int] | None:
    """Results, and how many offline devices the glob left out; None if it matched none."""
    targets = await fleet.resolve(args.target)
    skipped = 0
    if is_pattern(args.target):
        pattern = "*" if args.target == "all" else args.target
        offline = [d.id for d in await fleet.devices() if not d.online]
        skipped = sum(1 for d in offline if fnmatch.fnmatchcase(d, pattern))
    if not targets:
        _err(f"no online device matches {args.target!r}")
        return None
    results = await fleet.call_many(
        targets, method, params, concurrency=args.parallel, timeout=args.timeout
    )
    return results, skipped


async def _call(fleet: Fleet, args: argparse.Namespace, params: dict[str, Any]) -> int:
    outcome = await _fan_out(fleet, args, args.method, params)
    if outcome is None:
        return 1
    results, skipped = outcome
    for result in results:
        print(compact(result.to_json()) if args.json else result_row(result))
    print(summary(results, skipped), file=sys.stderr if args.json else sys.stdout)
    return 0 if all(r.ok for r in results) else 1


def _snapshot_path(output: str, device: str, many: bool) -> Path:
    path = Path(output)
    if many or path.is_dir() or output.endswith("/"):
        path.mkdir(parents=True, exist_ok=True)
        return path / f"{device}.jpg"
    return path


async def _snapshot(fleet: Fleet, args: argparse.Namespace) -> int:
    params = {} if args.quality is None else {"quality": args.quality}
    outcome = await _fan_out(fleet, args, "camera.snapshot", params)
    if outcome is None:
        return 1
    results, _offline = outcome
    failed = 0
    for result in results:
        if not result.ok:
            failed += 1
            print(compact(result.to_json()) if args.json else result_row(result))
            continue
        try:
            data = base64.b64decode(result.result["data"], validate=True)
        except (TypeError, KeyError, binascii.Error):
            failed += 1
            print(f"{result.device}  error: the device sent no JPEG data")
            continue
        path = _snapshot_path(args.output, result.device, len(results) > 1)
        path.write_bytes(data)
        size = f"{result.result.get('width')}x{result.result.get('height')}"
        row = {"device": result.device, "ok": True, "file": str(path), "size": size}
        print(compact(row) if args.json else f"{result.device}  {path}  {size}  {len(data)} B")
    print(f"{len(results) - failed} snapshot(s) written, {failed} failed", file=sys.stderr)
    return 0 if failed == 0 else 1


async def _follow(fleet: Fleet, args: argparse.Namespace) -> int:
    stream = fleet.events(args.target) if args.command == "events" else fleet.telemetry(args.target)
    async for message in stream:
        print(message_line(message, args.json), flush=True)
    return 0


async def _run(args: argparse.Namespace, params: dict[str, Any]) -> int:
    flags = {
        "broker": args.broker,
        "ca": args.ca,
        "cert": args.cert,
        "key": args.key,
        "prefix": args.prefix,
        "client_id": args.client_id,
        "allow_insecure": args.allow_insecure,
    }
    settings = resolve_settings(flags, args.profile)
    async with Fleet(settings=settings) as fleet:
        if args.command == "devices":
            return await _devices(fleet, args)
        if args.command == "call":
            return await _call(fleet, args, params)
        if args.command == "snapshot":
            return await _snapshot(fleet, args)
        return await _follow(fleet, args)


def main(argv: list[str]) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    params: dict[str, Any] = {}
    if args.command == "call":
        try:
            params = json.loads(args.params_json) if args.params_json else {}
            if not isinstance(params, dict):
                raise ValueError("--params must be a JSON object")
            params.update(parse_assignments(args.params))
        except ValueError as exc:
            parser.error(str(exc))
    try:
        return asyncio.run(_run(args, params))
    except FleetError as exc:
        _err(str(exc))
        return 1
    except KeyboardInterrupt:
        return 130
