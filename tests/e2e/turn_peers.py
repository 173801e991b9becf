"""The two peers of the TURN test, each a real process inside its own network namespace.

`python -m tests.e2e.turn_peers agent --address A --ice-servers JSON` runs the agent's media
path (tests/e2e/stack.py) with `webrtc.ice_addresses = [A]` and config-shaped ICE servers;
`python -m tests.e2e.turn_peers viewer` runs an aiortc viewer. A thread that entered a
namespace would do for sockets made in it, but asyncio, aioice's TURN refreshes and aiortc all
make sockets later and from wherever they run: a process per side is the only arrangement in
which no socket can end up in the wrong namespace.

Both speak JSON lines: one command per line on stdin (`{"cmd": ...}`), one event per line on
stdout (`{"event": ...}`); logs go to stderr. A peer that hits an error lets it propagate, so
the process exits and the test reports its log. The test side drives them with
`PeerProcess`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.infra.netns import netns_argv
from tests.infra.tools import log_tail

REPO_ROOT = Path(__file__).resolve().parents[2]
CLIENT, SESSION = "viewer-1", "s1"


# --- the test side ------------------------------------------------------------------------


class PeerError(Exception):
    """A peer process exited, or did not say what was expected in time."""


class PeerProcess:
    """One peer process: send it commands, wait for its events (kept in order, per kind)."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process, log_path: Path) -> None:
        self.name = name
        self.proc = proc
        self.log_path = log_path
        self._queues: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self.stray: list[str] = []  # stdout lines that are not events (a library's print)
        self._reader = asyncio.create_task(self._read())

    @classmethod
    @contextlib.asynccontextmanager
    async def started(
        cls,
        name: str,
        netns: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
    ) -> AsyncIterator[PeerProcess]:
        """Run `python -m tests.e2e.turn_peers *argv` in `netns`; killed on the way out."""
        with log_path.open("wb") as log:
            proc = await asyncio.create_subprocess_exec(
                *netns_argv(netns, [sys.executable, "-m", "tests.e2e.turn_peers", *argv]),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                cwd=REPO_ROOT,
                env={**os.environ, **(env or {})},
            )
        peer = cls(name, proc, log_path)
        try:
            yield peer
        finally:
            await peer.kill()

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            try:
                message = json.loads(line)
                event = message["event"]
            except (ValueError, KeyError, TypeError):
                self.stray.append(line.decode(errors="replace").rstrip())
                continue
            self._queue(event).put_nowait(message)

    def _queue(self, event: str) -> asyncio.Queue[dict[str, Any]]:
        return self._queues.setdefault(event, asyncio.Queue())

    def log(self) -> str:
        """The end of the peer's log (and any stray stdout), for failure messages."""
        stray = "".join(f"\nstdout: {line}" for line in self.stray)
        return f"--- {self.name} log ---\n{log_tail(self.log_path)}{stray}"

    async def send(self, cmd: str, **fields: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({"cmd": cmd, **fields}) + "\n").encode())
        try:
            await self.proc.stdin.drain()
        except ConnectionError:
            await self._reader
            raise PeerError(f"{self.name} exited ({self.proc.returncode})\n{self.log()}") from None

    async def next(self, event: str, timeout: float) -> dict[str, Any]:
        """The next `event` the peer sent (events of other kinds stay queued)."""
        queue = self._queue(event)
        if queue.empty() and not self._reader.done():
            getter = asyncio.ensure_future(queue.get())
            await asyncio.wait(
                {getter, self._reader}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if getter.done():
                return getter.result()
            getter.cancel()
        if not queue.empty():
            return queue.get_nowait()
        if self._reader.done():
            await self.proc.wait()
            raise PeerError(
                f"{self.name} exited ({self.proc.returncode}) before sending {event!r}\n"
                + self.log()
            )
        raise PeerError(f"{self.name}: no {event!r} within {timeout:.0f} s\n{self.log()}")

    async def kill(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        await self.proc.wait()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, ValueError):
            await self._reader


# --- the peer side --------------------------------------------------------------------------


logger = logging.getLogger("turn_peers")


def _emit(event: str, **fields: Any) -> None:
    logger.info("-> %s %s", event, {k: v for k, v in fields.items() if k != "sdp"})
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


async def _commands() -> AsyncIterator[dict[str, Any]]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        yield json.loads(line)


class _Emitting(list[Any]):
    """A list that also reports each appended item as an event (Stack's callbacks append)."""

    def __init__(self, emit: Any) -> None:
        super().__init__()
        self._emit = emit

    def append(self, item: Any) -> None:
        super().append(item)
        self._emit(item)


async def run_agent(address: str, ice_servers_json: str) -> None:
    from agent.runtime.ice_servers import ice_servers_from
    from tests.e2e.stack import running_stack

    servers = ice_servers_from(json.loads(ice_servers_json))
    async with running_stack(ice_servers=servers, ice_addresses=[address]) as stack:
        manager = stack.manager
        stack.candidates = _Emitting(
            lambda item: _emit(
                "candidate", candidate=item[2], mid=manager.transport_of(CLIENT, SESSION)[0]
            )
        )
        stack.states = _Emitting(lambda item: _emit("state", state=item[2], reason=item[3]))
        async for message in _commands():
            cmd = message["cmd"]
            if cmd == "offer":
                _emit("answer", sdp=await manager.offer(CLIENT, SESSION, message["sdp"]))
            elif cmd == "candidate":
                await manager.add_candidate(CLIENT, SESSION, message["candidate"], message["mid"])
            elif cmd == "pair":
                pair = manager._sessions[(CLIENT, SESSION)].ice.selected_pair
                [stats] = [stats for client, _, stats in manager.stats() if client == CLIENT]
                _emit("pair", pair=pair, frames_sent=getattr(stats, "frames_sent", 0))
            elif cmd == "close":
                break
            else:
                raise ValueError(f"unknown command {cmd!r}")
    # Leaving running_stack closed the session, which deletes the TURN allocation.
    _emit("closed")


async def run_viewer() -> None:
    from aiortc.sdp import candidate_from_sdp

    from tests.e2e.aiortc_viewer import AiortcViewer

    viewer = AiortcViewer()
    try:
        _emit("offer", sdp=await viewer.offer())
        async for message in _commands():
            cmd = message["cmd"]
            if cmd == "answer":
                await viewer.accept(message["sdp"])
            elif cmd == "candidate":
                candidate = None
                if message["candidate"] is not None:
                    text = message["candidate"].removeprefix("candidate:")
                    candidate = candidate_from_sdp(text)
                    candidate.sdpMid = message["mid"]
                await viewer.pc.addIceCandidate(candidate)
            elif cmd == "frames":
                await viewer.wait_frames(message["count"], timeout=message["timeout"])
                ice = viewer.pc.getTransceivers()[0].receiver.transport.transport
                nominated = ice._connection._nominated.get(1)
                pair = None
                if nominated is not None:
                    local, remote = nominated.local_candidate, nominated.remote_candidate
                    pair = [[local.type, local.host], [remote.type, remote.host]]
                _emit("frames", count=viewer.frames, sizes=sorted(viewer.sizes), pair=pair)
            elif cmd == "close":
                break
            else:
                raise ValueError(f"unknown command {cmd!r}")
    finally:
        await viewer.close()
    _emit("closed")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="turn_peers")
    roles = parser.add_subparsers(dest="role", required=True)
    agent = roles.add_parser("agent")
    agent.add_argument("--address", required=True)
    agent.add_argument("--ice-servers", required=True, help="JSON list of config ice_servers")
    roles.add_parser("viewer")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(relativeCreated)6.0f %(levelname)s %(name)s: %(message)s",
    )
    if args.role == "agent":
        asyncio.run(run_agent(args.address, args.ice_servers))
    else:
        asyncio.run(run_viewer())


if __name__ == "__main__":
    main()
