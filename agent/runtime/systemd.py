"""systemd's notify protocol (Type=notify): readiness, stopping, and the watchdog."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket


def sd_notify(message: str) -> None:
    """Tell systemd about readiness and liveness; silent without systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(message.encode(), address)


async def watchdog_loop() -> None:
    """Ping the watchdog at half the interval systemd asked for (WatchdogSec=); returns at
    once when the unit has no watchdog."""
    usec = os.environ.get("WATCHDOG_USEC")
    if not usec or not usec.isdigit():
        return
    while True:
        sd_notify("WATCHDOG=1")
        await asyncio.sleep(int(usec) / 2e6)
