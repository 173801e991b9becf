"""The asyncio loop around one sans-IO peer: ICE datagrams in, datagrams out, timers.

The peer never sees a socket or a clock; this driver feeds it ``loop.time()`` as ``now``,
arms one ``call_at`` for the peer's earliest timer, and sends what the peer produced after
every input, all of it in one call of the ICE pair's sender (one ``sendmmsg`` a frame on a
plain UDP pair; synchronous on relayed pairs too: aioice's TURN transport takes a
synchronous sendto), so the hot path has no coroutine and no system call per packet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence

from agent.net.ice import IceTransport
from agent.rtc.peer import (
    PeerClosed,
    PeerConnected,
    PeerEvent,
    PeerFailed,
    PeerSession,
    PeerState,
)

logger = logging.getLogger(__name__)

# A session that never gets going holds a viewer slot and sockets: bound both stages.
# From the answer to a working candidate pair (gathering, up to 5 s of it, included): a
# browser on a working path takes well under a second, a relayed one a few.
ICE_CONNECT_TIMEOUT = 10.0
# From the nominated pair to DTLS done (fingerprint checked, SRTP keys): a few round trips,
# with a retransmission or two on a lossy path. The DTLS layer's own bound is longer.
DTLS_HANDSHAKE_TIMEOUT = 10.0


class PeerDriver:
    """Runs one :class:`PeerSession` over one :class:`IceTransport`.

    ``on_event`` receives every peer event, plus a final ``PeerFailed``/``PeerClosed`` when
    ICE fails or consent is lost. All callbacks run on the event loop.
    """

    def __init__(
        self,
        peer: PeerSession,
        ice: IceTransport,
        on_event: Callable[[PeerEvent], None],
    ) -> None:
        self.peer = peer
        self.ice = ice
        self._on_event = on_event
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._send_now: Callable[[Sequence[bytes]], None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._ended = False
        self._dtls_deadline: asyncio.TimerHandle | None = None

    @staticmethod
    def wallclock_offset() -> float:
        """What to add to ``loop.time()`` to get Unix time (for RTCP's NTP timestamps)."""
        return time.time() - asyncio.get_running_loop().time()

    def start(self) -> None:
        self._tasks.append(self._loop.create_task(self._run(), name=f"{self.peer.name}-run"))

    async def _run(self) -> None:
        try:
            async with asyncio.timeout(ICE_CONNECT_TIMEOUT):
                await self.ice.connect()
        except ConnectionError as exc:
            self._end(PeerFailed(f"ice failed: {exc}"))
            return
        except TimeoutError:
            # aioice only gives up after the viewer's end-of-candidates, which a closed tab
            # or a hostile client never sends: without this the session would hold its
            # viewer slot and sockets forever.
            self._end(
                PeerFailed(f"ice timeout: no candidate pair within {ICE_CONNECT_TIMEOUT:g} s")
            )
            return
        self._send_now = self.ice.sender()
        if self._send_now is None:  # connect() returned, so a pair is nominated
            self._end(PeerFailed("ice connected without a nominated pair"))
            return
        self._dtls_deadline = self._loop.call_later(DTLS_HANDSHAKE_TIMEOUT, self._dtls_timed_out)
        self.peer.start(self._loop.time())
        self._after_input()
        while not self._ended:
            try:
                data = await self.ice.recv()
            except ConnectionError:
                self._end(PeerFailed("ice connection lost (no consent)"))
                return
            self.peer.receive(data, self._loop.time())
            self._after_input()

    def send_frame(self, payloads: Sequence[bytes], pts_90k: int, now: float) -> None:
        """Called by the fan-out for each access unit; never blocks.

        The peer paces: what may leave now is flushed, the timer re-armed for the rest, and
        a keyframe request from its pacer surfaces as an event.
        """
        if self._ended:
            return
        self.peer.send_frame(payloads, pts_90k, now)
        self._after_input()

    def kick(self) -> None:
        """Process whatever an API call on the peer produced (datagrams, events, timers)."""
        self._after_input()

    async def close(self, reason: str = "closed") -> None:
        """Close the peer (BYE, close_notify), then ICE."""
        if not self._ended:
            self.peer.close(self._loop.time(), reason)
            self._after_input()
        self._ended = True
        await self._stop()

    # --- internals ---------------------------------------------------------------------

    def _after_input(self) -> None:
        self._flush()
        while (event := self.peer.next_event()) is not None:
            self._dispatch(event)
        self._arm_timer()

    def _dispatch(self, event: PeerEvent) -> None:
        if isinstance(event, PeerConnected) and self._dtls_deadline is not None:
            self._dtls_deadline.cancel()
            self._dtls_deadline = None
        try:
            self._on_event(event)
        except Exception:
            logger.exception("%s: event handler failed for %s", self.peer.name, event)
        if isinstance(event, PeerFailed | PeerClosed):
            self._ended = True
            self._loop.create_task(self._stop())

    def _flush(self) -> None:
        datagrams = self.peer.datagrams_to_send()
        if not datagrams:
            return
        send = self._send_now
        if send is None:
            return  # before ICE connects the peer has nothing to send
        try:
            send(datagrams)
        except OSError as exc:
            # UDP send errors (unreachable, buffer full) lose these packets only; consent
            # freshness decides whether the viewer is gone.
            logger.debug("%s: send failed: %s", self.peer.name, exc)

    def _arm_timer(self) -> None:
        deadline = None if self._ended else self.peer.get_timer()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self.peer.handle_timer(self._loop.time())
        self._after_input()

    def _dtls_timed_out(self) -> None:
        self._dtls_deadline = None
        self._end(
            PeerFailed(f"dtls timeout: no handshake within {DTLS_HANDSHAKE_TIMEOUT:g} s of ICE")
        )

    def _end(self, event: PeerFailed | PeerClosed) -> None:
        if self._ended:
            return
        if self.peer.state not in (PeerState.FAILED, PeerState.CLOSED):
            self.peer.close(self._loop.time(), getattr(event, "reason", "closed"))
            self.peer.datagrams_to_send()
            while self.peer.next_event() is not None:
                pass
        self._dispatch(event)

    async def _stop(self) -> None:
        if self._dtls_deadline is not None:
            self._dtls_deadline.cancel()
            self._dtls_deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self.ice.close()
