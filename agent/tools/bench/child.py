"""The bench's processes talk JSON lines over stdin/stdout: the parent sends requests
(``{"op": ..., "rid": n, ...}``), the child answers each with the same ``rid`` and may also
send messages of its own (``{"event": ...}``, e.g. a trickled ICE candidate).

Keeping the agent, aiortc and the receivers in processes of their own is what lets the bench
read one process's CPU time, memory, threads and file descriptors alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import resource
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

Message = dict[str, Any]
Handler = Callable[[Message], Awaitable[Message | None]]
STDERR_TAIL = 40


class ChildError(RuntimeError):
    """A bench child process failed a request or exited."""


class Child:
    """The parent's end of one child process."""

    def __init__(self, process: asyncio.subprocess.Process, name: str) -> None:
        self.process = process
        self.name = name
        self.on_event: Callable[[Message], None] = lambda message: None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Message]] = {}
        self._reader = asyncio.create_task(self._read())

    @property
    def pid(self) -> int:
        return self.process.pid

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            message = json.loads(line)
            future = self._pending.pop(message.get("rid", -1), None)
            if future is not None and not future.done():
                future.set_result(message)
            elif "event" in message:
                self.on_event(message)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ChildError(f"{self.name} exited"))

    async def request(self, op: str, timeout: float = 60, **fields: Any) -> Message:
        assert self.process.stdin is not None
        rid = next(self._ids)
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        self.process.stdin.write(json.dumps({"op": op, "rid": rid, **fields}).encode() + b"\n")
        await self.process.stdin.drain()
        answer = await asyncio.wait_for(future, timeout)
        if "error" in answer:
            raise ChildError(f"{self.name}: {op}: {answer['error']}")
        return answer

    def send(self, op: str, **fields: Any) -> None:
        """A message that needs no answer."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"op": op, **fields}).encode() + b"\n")


@contextlib.asynccontextmanager
async def spawn(module: str, *args: str, name: str | None = None) -> AsyncIterator[Child]:
    """``python -m module args`` from this checkout, stopped (quit, then kill) on exit."""
    root = str(Path(__file__).resolve().parents[3])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env=env,
        limit=1 << 24,
    )
    child = Child(process, name or module.rsplit(".", 1)[-1])
    try:
        yield child
    finally:
        with contextlib.suppress(Exception):
            await child.request("quit", timeout=10)
            # The child closes its sessions (and writes a profile) after answering.
            await asyncio.wait_for(process.wait(), 15)
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        await process.wait()
        child._reader.cancel()


def own_usage() -> Message:
    """This process's CPU seconds, RSS (MB), threads and open file descriptors."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    rss_kb = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss_kb = int(line.split()[1])
    try:
        fds = len(os.listdir("/proc/self/fd"))
    except OSError:
        fds = -1
    return {
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss_mb": rss_kb / 1024,
        "max_rss_mb": usage.ru_maxrss / 1024,
        "threads": threading.active_count(),
        "os_threads": len(os.listdir("/proc/self/task")) if Path("/proc/self/task").exists() else 0,
        "fds": fds,
    }


def emit(message: Message) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def serve(handler: Handler) -> None:
    """The child's loop: each request line to ``handler`` (as a task), its answer out; ends on
    ``quit`` or when the parent closes stdin."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    tasks: set[asyncio.Task[None]] = set()

    async def answer(message: Message) -> None:
        try:
            reply = await handler(message)
        except Exception as exc:
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        if "rid" in message:
            emit({**(reply or {}), "rid": message["rid"]})

    while line := await reader.readline():
        message = json.loads(line)
        if message.get("op") == "quit":
            emit({"rid": message.get("rid")})
            break
        task = loop.create_task(answer(message))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    for task in tasks:
        task.cancel()
