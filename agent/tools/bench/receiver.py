"""A cheap viewer for the bench, many to a process: ICE (aioice), DTLS (our sans-IO
transport, as the browser's side), SRTP unprotect, then count packets, frames (marker bits)
and how late each frame is. No depacketizing and no decoding: a receiver must cost far less
than the sender it measures.

    python -m agent.tools.bench.receiver

Requests: ``new`` {id} -> {offer}; ``answer`` {id, sdp}; ``candidate`` {id, candidate};
``reset`` (start of a measured window); ``report`` -> {viewers: [...]}.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

import aioice
import aioice.ice

from agent.rtc.certificate import Certificate
from agent.rtc.dtls import DtlsConnected, DtlsFailed, DtlsRole, DtlsTransport
from agent.rtc.srtp import SrtpContext
from agent.tools.bench.child import Message, serve
from agent.tools.bench.report import percentile
from agent.tools.bench.viewer_sdp import AnswerFields, write_offer

TIMER_STEP = 0.05  # DTLS retransmission checks; only the handshake needs them


@dataclass
class Counts:
    packets: int = 0
    bytes: int = 0
    frames: int = 0
    errors: int = 0
    # arrival (wall s) minus RTP timestamp (s), one per frame: lateness once the minimum is
    # subtracted (the fastest frame of the window counts as on time).
    skew: list[float] = field(default_factory=list)


class Viewer:
    def __init__(self, ident: str, certificate: Certificate) -> None:
        self.ident = ident
        self.certificate = certificate
        self.ice = aioice.Connection(ice_controlling=True, components=1)
        self.dtls: DtlsTransport | None = None
        self.srtp: SrtpContext | None = None
        self.counts = Counts()
        self.connected_at: float | None = None
        self.failure: str | None = None
        self._last_ts: int | None = None
        self._ts_unwrapped = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._answered = asyncio.Event()

    async def offer(self) -> str:
        await self.ice.gather_candidates()
        candidates = [c.to_sdp() for c in self.ice.local_candidates]
        return write_offer(
            abs(hash(self.ident)),
            self.ice.local_username,
            self.ice.local_password,
            self.certificate.fingerprint("sha-256"),
            candidates,
        )

    async def answer(self, sdp: str) -> None:
        fields = AnswerFields.parse(sdp)
        self.ice.remote_username, self.ice.remote_password = fields.ufrag, fields.pwd
        for candidate in fields.candidates:
            await self._add_candidate(candidate)
        if "a=end-of-candidates" in sdp:
            await self._add_candidate(None)
        self._answered.set()
        # The offer said actpass: the answer's setup is the answerer's DTLS role.
        role = DtlsRole.SERVER if fields.setup == "active" else DtlsRole.CLIENT
        self.dtls = DtlsTransport(self.certificate, role, [fields.fingerprint])
        self._tasks.append(asyncio.create_task(self._run()))

    async def candidate(self, text: str | None) -> None:
        """A trickled candidate of the sender: it can overtake the answer (another message
        of the same pipe, handled concurrently), and an end-of-candidates before the answer's
        candidates would fail ICE at once."""
        await self._answered.wait()
        await self._add_candidate(text)

    async def _add_candidate(self, text: str | None) -> None:
        # Trickled and in-answer candidates may both arrive, end-of-candidates twice: aioice
        # refuses what comes after the end (ValueError), which changes nothing here.
        with contextlib.suppress(ValueError):
            if text is None:
                await self.ice.add_remote_candidate(None)
            else:
                candidate = aioice.Candidate.from_sdp(text.removeprefix("candidate:"))
                await self.ice.add_remote_candidate(candidate)

    async def _run(self) -> None:
        assert self.dtls is not None
        try:
            await self.ice.connect()
        except (ConnectionError, ValueError) as exc:
            self.failure = f"ice: {exc}"
            return
        self._bypass_queue()
        self.dtls.start(time.monotonic())
        await self._flush()
        self._tasks.append(asyncio.create_task(self._timers()))
        with contextlib.suppress(ConnectionError):
            while True:
                data = await self.ice.recv()
                if self._receive(data):
                    await self._flush()

    def _bypass_queue(self) -> None:
        """Media straight from the socket's protocol: aioice's per-datagram queue and task
        wake-up would cost a receiver more than the sender spends on the packet. STUN
        (consent checks) still goes to aioice; DTLS goes through its queue to ``_run``."""
        pair = self.ice._nominated.get(1)
        if pair is None:
            return
        protocol = pair.protocol
        original = protocol.datagram_received

        def datagram_received(data: bytes | str, addr: tuple[Any, ...]) -> None:
            if isinstance(data, bytes) and data and 128 <= data[0] <= 191 and self.srtp:
                if not 192 <= data[1] <= 223:
                    self._rtp(data)
                return
            original(data, addr)

        protocol.datagram_received = datagram_received  # type: ignore[method-assign]

    def _receive(self, data: bytes) -> bool:
        """Take one datagram; True when it was DTLS (which may want an answer)."""
        first = data[0]
        if 20 <= first <= 63 and self.dtls is not None:
            self.dtls.receive(data, time.monotonic())
            while (event := self.dtls.next_event()) is not None:
                if isinstance(event, DtlsConnected):
                    self.srtp = SrtpContext(event.keys)
                    self.connected_at = time.monotonic()
                elif isinstance(event, DtlsFailed):
                    self.failure = f"dtls: {event.reason}"
            return True
        if 128 <= first <= 191 and self.srtp is not None and not 192 <= data[1] <= 223:
            self._rtp(data)
        return False

    def _rtp(self, data: bytes) -> None:
        assert self.srtp is not None
        counts = self.counts
        try:
            packet = self.srtp.unprotect(data)
        except ValueError:
            counts.errors += 1
            return
        counts.packets += 1
        counts.bytes += len(packet)
        if packet[1] & 0x80:  # marker: the access unit's last packet
            counts.frames += 1
            timestamp = int.from_bytes(packet[4:8], "big")
            if self._last_ts is not None:
                self._ts_unwrapped += (timestamp - self._last_ts) & 0xFFFFFFFF
            self._last_ts = timestamp
            counts.skew.append(time.time() - self._ts_unwrapped / 90000)

    async def _flush(self) -> None:
        assert self.dtls is not None
        for datagram in self.dtls.datagrams_to_send():
            await self.ice.send(datagram)

    async def _timers(self) -> None:
        assert self.dtls is not None
        while self.srtp is None and self.failure is None:
            await asyncio.sleep(TIMER_STEP)
            deadline = self.dtls.get_timer()
            if deadline is not None and time.monotonic() >= deadline:
                self.dtls.handle_timer(time.monotonic())
                await self._flush()

    def report(self) -> Message:
        counts = self.counts
        skew = counts.skew
        floor = min(skew) if skew else 0.0
        late = [(s - floor) * 1000 for s in skew]
        return {
            "id": self.ident,
            "connected": self.srtp is not None,
            "failure": self.failure,
            "packets": counts.packets,
            "bytes": counts.bytes,
            "frames": counts.frames,
            "errors": counts.errors,
            "late_p50_ms": percentile(late, 50),
            "late_p99_ms": percentile(late, 99),
        }

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.ice.close()


async def _run() -> None:
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]
    certificate = Certificate.generate()
    viewers: dict[str, Viewer] = {}
    serial = itertools.count()

    async def handle(message: Message) -> Message | None:
        op = message["op"]
        if op == "new":
            ident = str(message.get("id", next(serial)))
            viewers[ident] = Viewer(ident, certificate)
            return {"offer": await viewers[ident].offer()}
        if op == "answer":
            await viewers[message["id"]].answer(message["sdp"])
            return {}
        if op == "candidate":
            await viewers[message["id"]].candidate(message["candidate"])
            return None
        if op == "reset":
            for viewer in viewers.values():
                viewer.counts = Counts()
            return {}
        if op == "report":
            return {"viewers": [v.report() for v in viewers.values()]}
        raise ValueError(f"unknown op {op!r}")

    try:
        await serve(handle)
    finally:
        await asyncio.gather(*(v.close() for v in viewers.values()), return_exceptions=True)


def main() -> None:
    logging.basicConfig(level=logging.DEBUG if os.environ.get("BENCH_DEBUG") else logging.WARNING)
    asyncio.run(_run())


if __name__ == "__main__":
    main()
