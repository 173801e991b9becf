"""How `edgecam ctl` prints: rows for people, JSON lines for machines, typed `key=value`."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from agent.client import CallResult, DeviceInfo, DeviceMessage, RpcCallError


def typed_value(text: str) -> Any:
    """`1000000` -> int, `1.5` -> float, `true` -> bool, `null`, `[..]`/`{..}` JSON; else the
    text itself (`name=cam-01`)."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_assignments(items: Sequence[str]) -> dict[str, Any]:
    """`["bitrate=800000", "quality=80"]` -> `{"bitrate": 800000, "quality": 80}`."""
    params: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"{item!r}: expected key=value")
        params[name] = typed_value(value)
    return params


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _ago(moment: float | None) -> str:
    if moment is None:
        return "-"
    return f"{max(0.0, time.time() - moment):.0f}s ago"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s"


def _stream(stream: dict[str, Any] | None) -> str:
    if not stream:
        return "-"
    rate = stream.get("bitrate")
    kbit = f" {rate // 1000}kbit/s" if isinstance(rate, int) else ""
    return f"{stream.get('width')}x{stream.get('height')}@{stream.get('framerate')}{kbit}"


def table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def devices_table(devices: Sequence[DeviceInfo]) -> str:
    rows = [["DEVICE", "STATE", "VERSION", "VIEWERS", "STREAM", "UPTIME", "LAST SEEN"]]
    for d in devices:
        # `ts` is the device's own clock at publication: how old the status is.
        seen = d.ts if d.ts is not None else d.last_seen
        rows.append(
            [
                d.id,
                d.state,
                d.version or "-",
                "-" if d.viewers is None else str(d.viewers),
                _stream(d.stream) if d.online else "-",
                _duration(d.uptime) if d.online else "-",
                _ago(seen) if d.online or d.ts is not None else "offline",
            ]
        )
    return table(rows)


def result_row(result: CallResult) -> str:
    if result.error is None:
        return f"{result.device}  ok  {compact(result.result)}"
    if isinstance(result.error, RpcCallError):
        data = f" {compact(result.error.data)}" if result.error.data is not None else ""
        return f"{result.device}  error {result.error.code}: {result.error.message}{data}"
    return f"{result.device}  error: {result.error}"


def summary(results: Sequence[CallResult], skipped_offline: int) -> str:
    failed = sum(1 for r in results if not r.ok)
    line = f"{len(results)} device(s): {len(results) - failed} ok, {failed} failed"
    if skipped_offline:
        line += f" ({skipped_offline} offline not called)"
    return line


def message_line(message: DeviceMessage, as_json: bool) -> str:
    if as_json:
        return compact({"device": message.device, "kind": message.kind, **message.body})
    body = dict(message.body)
    stamp = body.pop("ts", message.received)
    clock = time.strftime("%H:%M:%S", time.localtime(stamp if isinstance(stamp, float) else 0))
    name = body.pop("event", message.kind)
    return f"{clock} {message.device} {name} {compact(body)}"
