"""A bench child process that sends the replayed stream to viewers: the agent's own media path
(``--kind ours``: SessionManager, fan-out and peer drivers as app.py wires them, no MQTT), or
aiortc relaying the same access units (``--kind aiortc``, a dev dependency).

    python -m agent.tools.bench.sender --kind ours --frames FILE --fps 30 [--latency]

Requests (JSON lines, see child.py): ``offer`` {client, session, sdp} -> {sdp};
``candidate`` {client, session, candidate}; ``usage`` -> CPU, RSS, threads, fds, connected;
``latency`` -> capture-to-socket samples (ms) and, per viewer, RTP timestamp -> hand-off wall
time (with ``--latency``). Local candidates are sent as ``{"event": "candidate", ...}``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from agent.tools.bench.child import Message, emit, own_usage, serve
from agent.tools.bench.pattern import ReplaySource, load_frames


class Sender(Protocol):
    async def offer(self, client: str, session: str, sdp: str) -> str: ...
    async def candidate(self, client: str, session: str, candidate: str | None) -> None: ...
    async def close_session(self, client: str, session: str) -> None: ...
    def connected(self) -> int: ...
    def packets_sent(self) -> int: ...
    def latency(self) -> Message: ...
    async def close(self) -> None: ...


class Timing:
    """Bench-only instrumentation: hand-off wall/perf time per pts; how long after the
    hand-off ``FanOut.push`` returned (every viewer's packets stamped and queued in its
    pacer); and how long until the last viewer's pacer had let go of the frame's last packet
    to its driver's send (counted per pacer: packets in, packets out, in order)."""

    def __init__(self) -> None:
        self.handed: dict[int, tuple[float, float]] = {}  # pts -> (wall, perf)
        self.to_socket_ms: list[float] = []
        self.to_last_packet_ms: list[float] = []
        self.rtp_offsets: dict[str, int] = {}
        self.packets_in: dict[int, int] = {}  # id(pacer) -> packets it accepted
        self.packets_out: dict[int, int] = {}  # id(pacer) -> packets it let go
        # pts -> (hand-off perf time, {id(pacer): packets_in once the frame was queued})
        self._in_flight: dict[int, tuple[float, dict[int, int]]] = {}
        self.senders: Callable[[], list[Any]] = list

    def hand_off(self, pts: int, wall: float) -> None:
        self.handed[pts] = (wall, time.perf_counter())
        if len(self.handed) > 4000:
            for old in list(self.handed)[:1000]:
                del self.handed[old]

    def wrap_push(self, push: Callable[[Any, float], None]) -> Callable[[Any, float], None]:
        def timed(frame: Any, now: float) -> None:
            push(frame, now)
            handed = self.handed.get(frame.pts_90k)
            if handed is not None:
                self.to_socket_ms.append((time.perf_counter() - handed[1]) * 1000)
                senders = self.senders()
                for sender in senders:  # the glass-to-glass map: RTP timestamp -> pts
                    self.rtp_offsets.setdefault(str(id(sender)), sender.ts_offset)
                waiting = {
                    key: self.packets_in.get(key, 0)
                    for key in (id(sender.pacer) for sender in senders)
                    if self.packets_out.get(key, 0) < self.packets_in.get(key, 0)
                }
                if waiting:
                    self._in_flight[frame.pts_90k] = (handed[1], waiting)
                else:
                    self.to_last_packet_ms.append(self.to_socket_ms[-1])

        return timed

    def released(self, pacer: Any, count: int) -> None:
        """A pacer let ``count`` packets go: frames whose last packet that was are done."""
        key = id(pacer)
        out = self.packets_out[key] = self.packets_out.get(key, 0) + count
        if not self._in_flight or not count:
            return
        now = time.perf_counter()
        for pts, (started, waiting) in list(self._in_flight.items()):
            if key in waiting and out >= waiting[key]:
                del waiting[key]
            if not waiting:
                del self._in_flight[pts]
                self.to_last_packet_ms.append((now - started) * 1000)

    def report(self) -> Message:
        samples, self.to_socket_ms = self.to_socket_ms, []
        paced, self.to_last_packet_ms = self.to_last_packet_ms, []
        return {
            "to_socket_ms": samples,
            "to_last_packet_ms": paced,
            "handed": {str(pts): wall for pts, (wall, _) in self.handed.items()},
            "rtp_offsets": self.rtp_offsets,
        }


def stream_bitrate(source: ReplaySource) -> int:
    """The replayed stream's mean bitrate (what an encoder would be set to)."""
    frames = source.frames
    return max(1, sum(f.size for f in frames) * 8 * source.fps // max(1, len(frames)))


def _senders(fanout: Any) -> list[Any]:
    """Each viewer's VideoSender: the fan-out's sinks are the sessions' peer drivers."""
    sinks: list[Any] = [*fanout._active, *fanout._waiting]
    return [s.peer.sender for s in sinks if s.peer.sender is not None]


def _count_pacer_packets(timing: Timing) -> None:
    """Bench-only patches of the Pacer: count what each accepts and lets go."""
    from agent.rtc.pacer import Pacer

    enqueue_frame, enqueue_retransmission, due = (
        Pacer.enqueue_frame,
        Pacer.enqueue_retransmission,
        Pacer.due,
    )

    def accepted(pacer: Pacer, count: int) -> None:
        timing.packets_in[id(pacer)] = timing.packets_in.get(id(pacer), 0) + count

    def frame(self: Pacer, packets: Sequence[bytes], keyframe: bool, now: float) -> bool:
        before = self.dropped_frames
        taken = enqueue_frame(self, packets, keyframe, now)
        if taken and self.dropped_frames == before:
            accepted(self, len(packets))
        return taken

    def retransmission(self: Pacer, packet: bytes, now: float) -> None:
        enqueue_retransmission(self, packet, now)
        accepted(self, 1)

    def released(self: Pacer, now: float) -> list[bytes]:
        out = due(self, now)
        count = len(out)
        if self.queued_bytes == 0:
            # Empty: whatever it accepted has left or was dropped (a keyframe replacing the
            # queue, a stale retransmission); the counts meet again.
            count = timing.packets_in.get(id(self), 0) - timing.packets_out.get(id(self), 0)
        timing.released(self, max(count, len(out)))
        return out

    Pacer.enqueue_frame = frame  # type: ignore[method-assign]
    Pacer.enqueue_retransmission = retransmission  # type: ignore[method-assign]
    Pacer.due = released  # type: ignore[method-assign]


class OurSender:
    """The agent's media path, assembled as app.py does (tests/e2e/stack.py's shape)."""

    def __init__(self, source: ReplaySource, timing: Timing | None) -> None:
        from agent.media.fanout import FanOut
        from agent.media.feed import CameraFeed
        from agent.net.ice import IceServers
        from agent.net.sessions import SessionManager
        from agent.rtc.certificate import Certificate
        from agent.runtime.bitrate import path_bitrate

        self.fanout = FanOut(source.request_keyframe)
        if timing is not None:
            self.fanout.push = timing.wrap_push(self.fanout.push)  # type: ignore[method-assign,assignment]
            _count_pacer_packets(timing)
            timing.senders = lambda: _senders(self.fanout)
        self.timing = timing
        self.states: dict[tuple[str, str], str] = {}
        self.manager = SessionManager(
            fanout=self.fanout,
            certificate=Certificate.generate(),
            ice_addresses=["127.0.0.1"],
            ice_servers=IceServers(),
            max_viewers=2000,
            # What the agent gives a viewer's estimate for a 2 Mbit/s camera (the replayed
            # stream): its bitrate controller's headroom over the encoder.
            max_bitrate=path_bitrate(stream_bitrate(source)),
            on_state=self._on_state,
            on_candidate=self._on_candidate,
        )
        self.feed = CameraFeed(source, self.fanout)
        self.feed.start()

    def _on_state(self, client: str, session: str, state: str, reason: str | None) -> None:
        self.states[(client, session)] = str(state)
        emit({"event": "state", "client": client, "session": session, "state": str(state)})

    def _on_candidate(self, client: str, session: str, candidate: str | None) -> None:
        emit({"event": "candidate", "client": client, "session": session, "candidate": candidate})

    async def offer(self, client: str, session: str, sdp: str) -> str:
        return await self.manager.offer(client, session, sdp)

    async def candidate(self, client: str, session: str, candidate: str | None) -> None:
        await self.manager.add_candidate(client, session, candidate)

    async def close_session(self, client: str, session: str) -> None:
        await self.manager.close(client, session, "bench run over")

    def connected(self) -> int:
        return self.fanout.sink_count

    def packets_sent(self) -> int:
        return sum(int(getattr(stats, "packets_sent", 0)) for _, _, stats in self.manager.stats())

    def latency(self) -> Message:
        return self.timing.report() if self.timing is not None else {}

    async def close(self) -> None:
        await self.manager.close_all("bench over")
        await asyncio.to_thread(self.feed.stop)


async def _run(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    frames = load_frames(args.frames)
    timing = Timing() if args.latency else None
    source = ReplaySource(frames, args.fps, timing.hand_off if timing is not None else None)
    sender: Sender
    if args.kind == "ours":
        sender = OurSender(source, timing)
    else:
        from agent.tools.bench.sender_aiortc import AiortcSender

        sender = AiortcSender(source, loop)

    async def handle(message: Message) -> Message | None:
        op = message["op"]
        if op == "offer":
            return {
                "sdp": await sender.offer(message["client"], message["session"], message["sdp"])
            }
        if op == "candidate":
            await sender.candidate(message["client"], message["session"], message["candidate"])
            return None
        if op == "close":
            await sender.close_session(message["client"], message["session"])
            return {}
        if op == "usage":
            return {
                **own_usage(),
                "connected": sender.connected(),
                "packets_sent": sender.packets_sent(),
                "now": time.time(),
            }
        if op == "latency":
            return sender.latency()
        raise ValueError(f"unknown op {op!r}")

    try:
        await serve(handle)
    finally:
        await sender.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kind", choices=["ours", "aiortc"], required=True)
    parser.add_argument("--frames", type=Path, required=True)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--latency", action="store_true")
    parser.add_argument("--profile", type=Path, help="write a pyinstrument profile here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.profile is None:
        asyncio.run(_run(args))
        return
    from pyinstrument import Profiler  # a dev dependency, only for --profile

    profiler = Profiler(interval=0.0005)
    profiler.start()
    try:
        asyncio.run(_run(args))
    finally:
        profiler.stop()
        args.profile.write_text(profiler.output_text(unicode=False, color=False))


if __name__ == "__main__":
    main()
