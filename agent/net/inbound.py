"""What one session lets in at its UDP ports: only its viewer's datagrams, and boundedly.

aioice, left alone, answers every STUN request (a 400 or 401 to strangers, which lets a
sweep find the ports), and queues every other datagram from any source in an unbounded
queue that the driver reads only once ICE has connected. So anyone who learns a port could
fill memory, or end a handshake with one forged DTLS alert. This gate sits between the
sockets and aioice:

- STUN requests that do not name our ufrag (with MESSAGE-INTEGRITY) are dropped silently
  (RFC 8445 section 7.3 lets an agent discard them); aioice still answers the rest.
- Other datagrams must look like DTLS or RTP/RTCP (RFC 7983) and, once a pair is nominated,
  come from that pair's socket and remote address; before nomination a few are held (a
  DTLS flight that raced the nomination) and released only if they came from that address.
- What waits for the driver is bounded in datagrams and bytes, dropping the oldest.

Every refusal is counted; a session logs only its first few, then one summary at close.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from aioice import ice as aioice_ice
from aioice import stun

logger = logging.getLogger(__name__)

# Held before a pair is nominated: a DTLS flight is a handful of datagrams.
MAX_EARLY_DATAGRAMS = 16
# Waiting for the driver after nomination: it reads as fast as the loop runs, so this only
# fills under a flood (or a stalled loop), and then the oldest go first.
MAX_QUEUED_DATAGRAMS = 256
MAX_QUEUED_BYTES = 256 * 1024
# Log lines one session writes about refused datagrams; the rest are only counted.
REFUSAL_LOG_BUDGET = 3

Datagram = tuple[bytes, int]  # data, ICE component (aioice's queue item)
Address = tuple[str, int]


@dataclass(slots=True)
class InboundCounters:
    """Datagrams one session refused or dropped at its UDP ports."""

    unauthenticated_stun: int = 0  # STUN requests without our ufrag: not answered
    not_demuxable: int = 0  # neither STUN, DTLS nor RTP/RTCP by its first byte
    foreign: int = 0  # DTLS/RTP/RTCP from anywhere but the nominated pair's remote
    early_overflow: int = 0  # held before nomination, pushed out by newer ones
    queue_overflow: int = 0  # waited for the driver, pushed out by newer ones

    @property
    def total(self) -> int:
        return (
            self.unauthenticated_stun
            + self.not_demuxable
            + self.foreign
            + self.early_overflow
            + self.queue_overflow
        )


class DatagramQueue(asyncio.Queue[Datagram | None]):
    """aioice's receive queue, bounded in datagrams and bytes; full, it drops the oldest.

    ``None`` (aioice's end-of-connection mark) is never dropped and counts no bytes.
    """

    def __init__(self, on_drop: Callable[[], None]) -> None:
        super().__init__()
        self._bytes = 0
        self._on_drop = on_drop

    @property
    def held_bytes(self) -> int:
        return self._bytes

    def put_nowait(self, item: Datagram | None) -> None:
        size = len(item[0]) if item is not None else 0
        while not self.empty() and (
            self.qsize() >= MAX_QUEUED_DATAGRAMS or self._bytes + size > MAX_QUEUED_BYTES
        ):
            oldest = self._queue[0]  # type: ignore[attr-defined]
            if oldest is None:
                break
            self.get_nowait()
            self._on_drop()
        super().put_nowait(item)

    def _put(self, item: Datagram | None) -> None:
        self._bytes += len(item[0]) if item is not None else 0
        self._queue.append(item)  # type: ignore[attr-defined]

    def _get(self) -> Datagram | None:
        item = cast("Datagram | None", self._queue.popleft())  # type: ignore[attr-defined]
        self._bytes -= len(item[0]) if item is not None else 0
        return item


class InboundGate:
    """The admission rules of one session's sockets (see the module docstring)."""

    def __init__(
        self,
        *,
        name: str,
        nominated: Callable[[], aioice_ice.CandidatePair | None],
        valid_username: Callable[[str], bool],
    ) -> None:
        self.name = name
        self.counters = InboundCounters()
        self.queue = DatagramQueue(self._queue_overflowed)
        self._nominated = nominated
        self._valid_username = valid_username
        self._early: deque[tuple[bytes, Address, aioice_ice.StunProtocol]] = deque()
        self._logs_left = REFUSAL_LOG_BUDGET

    def admits_request(self, message: stun.Message, addr: Address) -> bool:
        """Whether a STUN request names our ufrag; if not, it is counted and not answered.

        Its MESSAGE-INTEGRITY is aioice's to check (a 401 then goes only to a sender who
        knows our ufrag, which only the signalling channel carries).
        """
        username = message.attributes.get("USERNAME")
        if (
            isinstance(username, str)
            and "MESSAGE-INTEGRITY" in message.attributes
            and self._valid_username(username)
        ):
            return True
        self.counters.unauthenticated_stun += 1
        self._log_refusal("a STUN request without our ufrag", addr)
        return False

    def datagram(self, data: bytes, addr: Address, protocol: aioice_ice.StunProtocol) -> None:
        """A datagram that is not STUN: queue it for the driver, hold it, or refuse it."""
        first = data[0] if data else 0
        if not (20 <= first <= 63 or 128 <= first <= 191):
            self.counters.not_demuxable += 1
            self._log_refusal(f"a datagram with first byte {first}", addr)
            return
        pair = self._nominated()
        if pair is None:
            if len(self._early) >= MAX_EARLY_DATAGRAMS:
                self._early.popleft()
                self.counters.early_overflow += 1
                self._log_refusal("a datagram held before nomination (full)", addr)
            self._early.append((data, addr, protocol))
            return
        if self._early:
            self.release_early()
        self._admit(data, addr, protocol, pair)

    def release_early(self) -> None:
        """Once a pair is nominated: queue what its remote sent before, refuse the rest."""
        pair = self._nominated()
        if pair is None:
            return
        early, self._early = self._early, deque()
        for data, addr, protocol in early:
            self._admit(data, addr, protocol, pair)

    def close(self) -> None:
        self._early.clear()
        if self.counters.total:
            logger.info("%s: refused at its ports: %s", self.name, self.counters)

    def _admit(
        self,
        data: bytes,
        addr: Address,
        protocol: aioice_ice.StunProtocol,
        pair: aioice_ice.CandidatePair,
    ) -> None:
        if protocol is not pair.protocol or not _same_address(addr, pair.remote_addr):
            self.counters.foreign += 1
            self._log_refusal("DTLS/RTP from outside the nominated pair", addr)
            return
        self.queue.put_nowait((data, 1))

    def _queue_overflowed(self) -> None:
        self.counters.queue_overflow += 1
        if self.counters.queue_overflow == 1:
            self._log_refusal("a datagram the driver had not read yet (queue full)", None)

    def _log_refusal(self, what: str, addr: Address | None) -> None:
        if self._logs_left <= 0:
            return
        self._logs_left -= 1
        source = f" from {addr[0]}:{addr[1]}" if addr is not None else ""
        more = "; further refusals are counted, not logged" if self._logs_left == 0 else ""
        logger.info("%s: dropped %s%s%s", self.name, what, source, more)


class GuardedStunProtocol(aioice_ice.StunProtocol):
    """aioice's socket protocol with the session's gate in front of the connection."""

    def __init__(self, receiver: aioice_ice.Connection, gate: InboundGate) -> None:
        super().__init__(receiver)
        self.gate = gate

    def datagram_received(self, data: bytes | str, addr: tuple[Any, ...]) -> None:
        address: Address = (addr[0], addr[1])  # an IPv6 four-tuple as a two-tuple
        data = cast(bytes, data)
        # STUN's first byte is 0-3 (RFC 7983): skip the parse attempt for everything else.
        if not data or data[0] > 3:
            self.gate.datagram(data, address, self)
            return
        try:
            message = stun.parse_message(data)
        except ValueError:
            self.gate.datagram(data, address, self)
            return
        if message.message_class in (stun.Class.RESPONSE, stun.Class.ERROR):
            transaction = self.transactions.get(message.transaction_id)
            if transaction is not None:
                transaction.response_received(message, address)
        elif message.message_class == stun.Class.REQUEST and self.gate.admits_request(
            message, address
        ):
            self.receiver.request_received(message, address, self)


def _same_address(addr: Address, expected: Address) -> bool:
    if addr == expected:
        return True
    if addr[1] != expected[1]:
        return False
    try:
        return ipaddress.ip_address(addr[0]) == ipaddress.ip_address(expected[0])
    except ValueError:
        return False
