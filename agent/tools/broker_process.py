"""Waiting for a mosquitto the tools started (the demo's, the bench's) to accept
connections: it has no readiness signal of its own."""

from __future__ import annotations

import asyncio
import subprocess


async def wait_listening(
    host: str, port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 10
) -> None:
    """Until ``proc`` (a broker) accepts TCP on ``host:port``; RuntimeError naming ``what``
    when it exits first or does not listen within ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode}")
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(0.05)  # mosquitto has no readiness signal: poll its port
            continue
        writer.close()
        return
    raise RuntimeError(f"{what} did not listen on {host}:{port} within {timeout:g} s")
