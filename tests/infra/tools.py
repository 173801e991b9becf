"""Small helpers shared by the test infrastructure: tool lookup, ports, readiness waits."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest


def require_tool(name: str, apt_package: str) -> str:
    """Return the absolute path of executable `name`, or fail the test saying how to install it."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")
    if path is None:
        pytest.fail(
            f"{name} missing: run `make test` (installs it) or `apt-get install {apt_package}`",
            pytrace=False,
        )
    return path


def free_port(host: str = "127.0.0.1", *, udp_too: bool = False) -> int:
    """Return a TCP port on `host` that is free now (and free for UDP too when `udp_too`)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port = int(tcp.getsockname()[1])
            if not udp_too:
                return port
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((host, port))
                except OSError:
                    continue
                return port
    raise RuntimeError(f"no free port on {host}")


def log_tail(path: Path, limit: int = 4000) -> str:
    """The end of a log file, for failure messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<no log: {exc}>"
    return text[-limit:]


def wait_until(
    ready: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
    interval: float = 0.02,
) -> None:
    """Poll `ready()` until it is true; fail early if `proc` exits, and at `timeout` seconds.

    This is a readiness wait for an external process, not test synchronisation: it returns
    as soon as the condition holds.
    """
    deadline = time.monotonic() + timeout
    while True:
        if ready():
            return
        if proc is not None and proc.poll() is not None:
            tail = log_tail(log) if log is not None else ""
            raise RuntimeError(f"{what}: process exited with {proc.returncode}\n{tail}")
        if time.monotonic() >= deadline:
            tail = log_tail(log) if log is not None else ""
            raise TimeoutError(f"{what}: not ready after {timeout:.1f} s\n{tail}")
        time.sleep(interval)


def start_server(
    argv: list[str], log: Path, *, ready: Callable[[], bool], timeout: float, what: str
) -> subprocess.Popen[bytes]:
    """Start a server whose output is appended to `log`; return once `ready()` holds.

    If it exits or is not ready in time, it is killed and the error carries the log's tail.
    """
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    try:
        wait_until(ready, timeout=timeout, what=what, proc=proc, log=log)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc


def tcp_accepts(host: str, port: int, timeout: float = 0.2) -> bool:
    """Whether a TCP connect to host:port succeeds now."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def stop_process(proc: subprocess.Popen[bytes], *, timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after `timeout` seconds; always reaps the child."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    proc.wait()
