"""aiortc viewers in a process of their own, driven over a pipe.

The soak measures the agent's memory: with the viewers in the same interpreter, aiortc's own
allocations (its decoder threads' glibc arenas, its packet queues) move the RSS by several MB
from run to run and hide what the agent leaves behind. Here the agent's process holds only the
agent; the viewers live in `python -m tests.e2e.viewer_pool`, which reads one JSON request per
line on stdin and answers one JSON line per request on stdout:

    {"req": 1, "op": "offer", "stall_dtls": false}  -> {"req": 1, "viewer": 7, "sdp": "v=0..."}
    {"req": 2, "op": "accept", "viewer": 7, "sdp": "v=0..."}  -> {"req": 2}
    {"req": 3, "op": "frames", "viewer": 7, "count": 1}       -> {"req": 3}
    {"req": 4, "op": "close", "viewer": 7}                    -> {"req": 4}

A failure answers {"req": N, "error": "..."}; requests run concurrently.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import sys
from typing import Any

import aioice.ice

from tests.e2e.aiortc_viewer import AiortcViewer


class ViewerPoolError(Exception):
    """A request the pool's process answered with an error."""


class ViewerPool:
    """The agent's side: starts the pool's process and sends it requests."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.ensure_future(self._read_answers())

    @classmethod
    async def start(cls) -> ViewerPool:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.e2e.viewer_pool",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 20,  # an SDP line is a few KB; the default 64 KB would do, with margin
        )
        return cls(process)

    @property
    def pid(self) -> int:
        return self._process.pid

    async def offer(self, *, stall_dtls: bool = False) -> tuple[int, str]:
        """A new viewer and its offer; with `stall_dtls` it never starts its DTLS handshake."""
        answer = await self._call({"op": "offer", "stall_dtls": stall_dtls})
        return int(answer["viewer"]), str(answer["sdp"])

    async def accept(self, viewer: int, sdp: str) -> None:
        await self._call({"op": "accept", "viewer": viewer, "sdp": sdp})

    async def wait_frames(self, viewer: int, count: int) -> None:
        await self._call({"op": "frames", "viewer": viewer, "count": count})

    async def close_viewer(self, viewer: int) -> None:
        await self._call({"op": "close", "viewer": viewer})

    async def close(self) -> None:
        stdin = self._process.stdin
        assert stdin is not None
        stdin.close()
        await self._process.wait()
        await self._reader

    async def _call(self, request: dict[str, Any]) -> dict[str, Any]:
        stdin = self._process.stdin
        assert stdin is not None
        req = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[req] = future
        stdin.write(json.dumps({"req": req, **request}).encode() + b"\n")
        await stdin.drain()
        answer = await future
        if "error" in answer:
            raise ViewerPoolError(f"{request['op']}: {answer['error']}")
        return answer

    async def _read_answers(self) -> None:
        stdout = self._process.stdout
        assert stdout is not None
        while line := await stdout.readline():
            answer = json.loads(line)
            future = self._pending.pop(answer["req"], None)
            if future is not None and not future.done():
                future.set_result(answer)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ViewerPoolError("the viewer pool's process ended"))


# --- the pool's process -------------------------------------------------------------------


class _Pool:
    def __init__(self) -> None:
        self.viewers: dict[int, AiortcViewer] = {}
        self._ids = itertools.count(1)

    async def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request["op"]
        if op == "offer":
            viewer = AiortcViewer()
            if request.get("stall_dtls"):
                dtls: Any = viewer.pc.getTransceivers()[0].receiver.transport
                dtls.start = lambda *a: asyncio.get_running_loop().create_future()
            number = next(self._ids)
            self.viewers[number] = viewer
            return {"viewer": number, "sdp": await viewer.offer()}
        viewer = self.viewers[int(request["viewer"])]
        if op == "accept":
            await viewer.accept(str(request["sdp"]))
        elif op == "frames":
            await viewer.wait_frames(int(request["count"]))
        elif op == "close":
            del self.viewers[int(request["viewer"])]
            await viewer.close()
        else:
            raise ValueError(f"unknown op {op!r}")
        return {}


async def _answer(pool: _Pool, request: dict[str, Any], out: asyncio.Lock) -> None:
    try:
        answer = await pool.handle(request)
    except Exception as exc:  # reported to the caller, which fails its test with it
        answer = {"error": f"{type(exc).__name__}: {exc}"}
    async with out:
        sys.stdout.write(json.dumps({"req": request["req"], **answer}) + "\n")
        sys.stdout.flush()


async def _serve() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    pool = _Pool()
    out = asyncio.Lock()
    tasks: set[asyncio.Task[None]] = set()
    while line := await reader.readline():
        task = asyncio.ensure_future(_answer(pool, json.loads(line), out))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    for viewer in list(pool.viewers.values()):
        await viewer.close()


def main() -> None:
    # aiortc leaves a connect task pending when a viewer closes mid-handshake (the abandoned
    # ones): asyncio's "Task was destroyed but it is pending" about it is aiortc's, not ours.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    # aioice (inside aiortc) skips 127.0.0.1; the soak runs on loopback only.
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]
    asyncio.run(_serve())


if __name__ == "__main__":
    main()
