"""ICE for one viewer, on aioice: the device is ICE-controlled and trickles both ways.

aioice gathers every candidate before it returns and lists no loopback address, while the
agent must answer at once with its host candidates, trickle server-reflexive and relayed
ones as they are found, and honour ``webrtc.ice_addresses`` (loopback included). So this
module gathers itself with aioice's own building blocks (``StunProtocol``,
``server_reflexive_candidate``, ``relayed_candidate``) and fills the connection's candidate
list the way ``Connection.gather_candidates`` would; aioice still runs the checks,
nomination and consent freshness (RFC 7675).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

import aioice
from aioice import ice as aioice_ice
from aioice.candidate import candidate_foundation, candidate_priority

from agent.net.inbound import GuardedStunProtocol, InboundCounters, InboundGate
from agent.net.udp_batch import batch_sender

logger = logging.getLogger(__name__)

# How long server-reflexive and relayed candidates may take (aioice's own default).
GATHER_TIMEOUT = 5.0
_GatherTask: TypeAlias = "asyncio.Task[tuple[aioice.Candidate, aioice_ice.StunProtocol | None]]"


@dataclass(frozen=True, slots=True)
class TurnServer:
    host: str
    port: int
    username: str
    password: str
    transport: str = "udp"  # udp | tcp
    tls: bool = False


@dataclass(frozen=True, slots=True)
class IceServers:
    """The STUN and TURN servers one session gathers with."""

    stun: tuple[tuple[str, int], ...] = ()
    turn: tuple[TurnServer, ...] = ()


CandidateCallback = Callable[[str | None], None]


def usable_host_addresses() -> list[str]:
    """Every non-loopback interface address, as aioice would pick them."""
    return list(aioice_ice.get_host_addresses(use_ipv4=True, use_ipv6=True))


class _TricklingConnection(aioice.Connection):
    """aioice's Connection with our gathering: host candidates first, then the rest."""

    def __init__(
        self,
        *,
        addresses: list[str],
        servers: IceServers,
        on_candidate: CandidateCallback,
    ) -> None:
        super().__init__(ice_controlling=False, components=1)
        self.gate = InboundGate(
            name=f"ice {self.local_username}",
            nominated=lambda: self._nominated.get(1),
            valid_username=self._valid_username,
        )
        # Bounded, and fed only by the gate (aioice's own is unbounded and open to anyone).
        self._queue = self.gate.queue
        self._edgecam_addresses = addresses
        self._edgecam_servers = servers
        self._edgecam_on_candidate = on_candidate
        self.host_gathered = asyncio.Event()
        # STUN/TURN answers still awaited: ICE must not give up on the pairs it has meanwhile.
        self.servers_pending = False
        # Set the moment a pair is nominated: aioice's connect() notices only at its next
        # 20 ms pacing tick, and DTLS should not wait for that.
        self.completed = asyncio.Event()

    async def gather_candidates(self) -> None:
        if self._local_candidates_start:
            return
        self._local_candidates_start = True
        host_protocols = await self._bind_hosts()
        # aioice's connect() waits for the end of gathering: trickle ICE (RFC 8838) checks
        # the host pairs at once, and a server's candidate joins the check list when it
        # comes (_add_gathered), instead of every check waiting for the slowest server.
        self._local_candidates_end = True
        self.servers_pending = True
        self.host_gathered.set()
        try:
            await self._gather_from_servers(self._server_tasks(host_protocols))
        finally:
            self.servers_pending = False
        self._edgecam_on_candidate(None)
        if self._early_checks_done and not self._check_list_maybe_complete():
            self._check_list_maybe_fail()  # every pair failed while a server was awaited

    def _check_list_maybe_complete(self) -> bool:
        complete: bool = super()._check_list_maybe_complete()
        if complete:
            self.completed.set()
        return complete

    def _check_list_maybe_fail(self) -> None:
        if not self.servers_pending:
            super()._check_list_maybe_fail()

    def _check_periodic(self) -> bool:
        # Keep pacing checks while a relayed candidate may still add pairs.
        return super()._check_periodic() or (self.servers_pending and not self._check_list_done)

    async def _bind_hosts(self) -> list[aioice_ice.StunProtocol]:
        """One UDP socket per configured address, each a host candidate at once."""
        loop = asyncio.get_running_loop()
        host_protocols: list[aioice_ice.StunProtocol] = []
        for address in self._edgecam_addresses:
            try:
                transport, protocol = await loop.create_datagram_endpoint(
                    self._new_protocol, local_addr=(address, 0)
                )
            except OSError as exc:
                logger.warning("ice: cannot bind %s: %s", address, exc)
                continue
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
            host, port = transport.get_extra_info("sockname")[:2]
            protocol.local_candidate = aioice.Candidate(
                foundation=candidate_foundation("host", "udp", host),
                component=1,
                transport="udp",
                priority=candidate_priority(1, "host"),
                host=host,
                port=port,
                type="host",
            )
            host_protocols.append(protocol)
            self._add_local(protocol.local_candidate, protocol)
        return host_protocols

    def _server_tasks(self, host_protocols: list[aioice_ice.StunProtocol]) -> set[_GatherTask]:
        """A server-reflexive query per STUN server and IPv4 socket, an allocation per TURN."""
        tasks: set[_GatherTask] = set()
        for stun_server in self._edgecam_servers.stun:
            for host_protocol in host_protocols:
                if ipaddress.ip_address(host_protocol.local_candidate.host).version == 4:
                    tasks.add(
                        asyncio.create_task(
                            aioice_ice.server_reflexive_candidate(host_protocol, stun_server)
                        )
                    )
        for turn in self._edgecam_servers.turn:
            tasks.add(
                asyncio.create_task(
                    aioice_ice.relayed_candidate(
                        component=1,
                        hide_related_address=False,
                        protocol_factory=self._new_protocol,
                        turn_server=(turn.host, turn.port),
                        turn_username=turn.username,
                        turn_password=turn.password,
                        turn_ssl=turn.tls,
                        turn_transport=turn.transport,
                    )
                )
            )
        return tasks

    async def _gather_from_servers(self, pending: set[_GatherTask]) -> None:
        """Trickle each candidate as soon as its server answers, not when the slowest does."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + GATHER_TIMEOUT
        try:
            while pending:
                done, pending = await asyncio.wait(
                    pending,
                    timeout=max(0.0, deadline - loop.time()),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if not done:
                    break
                for task in done:
                    if (error := task.exception()) is not None:
                        logger.warning("ice: a STUN/TURN server gave no candidate: %s", error)
                        continue
                    candidate, relay_protocol = task.result()
                    self._add_gathered(candidate, relay_protocol)
        finally:
            # Also when the session closes mid-gathering: a TURN allocation that completes
            # unseen would otherwise live on, refreshed by aioice, with nobody to close it.
            for task in pending:
                task.cancel()
            for outcome in await asyncio.gather(*pending, return_exceptions=True):
                if isinstance(outcome, tuple) and outcome[1] is not None:
                    await outcome[1].close()

    def _new_protocol(self) -> GuardedStunProtocol:
        return GuardedStunProtocol(self, self.gate)

    async def recv(self) -> bytes:
        # What the viewer sent while its check was being nominated goes first.
        self.gate.release_early()
        data: bytes = await super().recv()
        return data

    def data_received(self, data: bytes, component: int) -> None:
        # Only aioice's unguarded protocol calls this, and this connection has none; were
        # one to appear, its datagrams carry no source address to check: refuse them.
        self.gate.counters.foreign += 1

    def _add_gathered(
        self, candidate: aioice.Candidate, relay_protocol: aioice_ice.StunProtocol | None
    ) -> None:
        if relay_protocol is not None:
            self._protocols.append(relay_protocol)
            # aioice pairs only when a remote candidate arrives: pair the ones already known
            # with this late local candidate too.
            for remote in self._remote_candidates:
                self._pair_remote_candidate(remote)
            self.sort_check_list()
        # A server-reflexive candidate has no socket of its own: checks use its host base.
        self._local_candidates.append(candidate)
        self._edgecam_on_candidate(candidate.to_sdp())

    def _add_local(self, candidate: aioice.Candidate, protocol: aioice_ice.StunProtocol) -> None:
        if protocol not in self._protocols:
            self._protocols.append(protocol)
        self._local_candidates.append(candidate)
        self._edgecam_on_candidate(candidate.to_sdp())


class IceTransport:
    """One viewer's ICE agent (controlled side) with trickle both ways.

    ``on_candidate`` receives each local candidate (the text after ``candidate:``) as it is
    found, then ``None`` once gathering is over.
    """

    def __init__(
        self,
        *,
        addresses: list[str],
        servers: IceServers,
        on_candidate: CandidateCallback,
    ) -> None:
        self._gathered: list[str] = []
        self._on_candidate = on_candidate
        self._conn = _TricklingConnection(
            addresses=addresses, servers=servers, on_candidate=self._candidate_found
        )
        self._gather_task: asyncio.Task[None] | None = None
        self._checks: asyncio.Task[None] | None = None
        self._servers_pending = bool(servers.stun or servers.turn)
        self.gathering_done = False

    @property
    def local_username(self) -> str:
        return str(self._conn.local_username)

    @property
    def counters(self) -> InboundCounters:
        """What this session's ports refused or dropped (see agent/net/inbound.py)."""
        return self._conn.gate.counters

    @property
    def local_password(self) -> str:
        return str(self._conn.local_password)

    async def start_gathering(self) -> list[str]:
        """Bind the host candidates and return them; the rest trickle in afterwards."""
        self._gather_task = asyncio.create_task(self._conn.gather_candidates())
        host_wait = asyncio.create_task(self._conn.host_gathered.wait())
        await asyncio.wait({self._gather_task, host_wait}, return_when=asyncio.FIRST_COMPLETED)
        host_wait.cancel()
        if self._gather_task.done():
            if self._gather_task.cancelled():
                raise ConnectionError("ice closed while gathering")
            if (error := self._gather_task.exception()) is not None:
                raise ConnectionError(f"ice gathering failed: {error}")
        return list(self._gathered)

    def _candidate_found(self, candidate: str | None) -> None:
        if candidate is None:
            self.gathering_done = True
        else:
            self._gathered.append(candidate)
        self._on_candidate(candidate)

    def set_remote_credentials(self, username: str, password: str) -> None:
        self._conn.remote_username = username
        self._conn.remote_password = password

    async def add_remote_candidate(self, candidate: str | None) -> None:
        """A remote candidate (text after ``candidate:``), or None for end-of-candidates."""
        if candidate is None:
            await self._conn.add_remote_candidate(None)
            return
        text = candidate.removeprefix("a=").removeprefix("candidate:").strip()
        try:
            parsed = aioice.Candidate.from_sdp(text)
        except (ValueError, IndexError) as exc:
            raise ValueError(f"bad ICE candidate: {exc or text!r}") from exc
        if parsed.component != 1:
            return  # rtcp-mux: component 2 candidates are never used
        if not 1 <= parsed.port <= 65535:
            # asyncio's sendto would raise for it and close the session's socket.
            raise ValueError(f"bad ICE candidate: port {parsed.port} out of range")
        await self._conn.add_remote_candidate(parsed)

    async def connect(self) -> None:
        """Run the connectivity checks until a pair is nominated (ConnectionError if none).

        Checks start once the host candidates are bound, while server-reflexive and relayed
        candidates are still being gathered.
        """
        task = self._gather_task
        if task is None:
            raise ConnectionError("ice: start_gathering() was never called")
        await self._conn.host_gathered.wait()
        if task.done() and not task.cancelled() and (error := task.exception()) is not None:
            raise ConnectionError(f"ice gathering failed: {error}")
        checks = self._checks = asyncio.create_task(self._conn.connect())
        completed = asyncio.create_task(self._conn.completed.wait())
        try:
            await asyncio.wait({checks, completed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            completed.cancel()
        if checks.done():
            checks.result()  # raises ConnectionError when ICE failed
        # Else nominated: connect() returns within its tick and starts consent freshness.

    @property
    def selected_pair(self) -> tuple[str, str] | None:
        """Local and remote candidate types of the nominated pair, e.g. ('relay', 'host')."""
        pair = self._conn._nominated.get(1)
        if pair is None:
            return None
        return (pair.local_candidate.type, pair.remote_candidate.type)

    def sender(self) -> Callable[[Sequence[bytes]], None] | None:
        """A synchronous send function for the nominated pair, taking all the datagrams
        one input produced (a frame's packets), so the per-packet path needs no coroutine
        and, where it can, no system call per datagram: host and server-reflexive pairs
        send the whole list with one ``sendmmsg`` on their UDP socket (agent/net/udp_batch);
        a relayed pair's protocol wraps aioice's TURN transport, whose ``sendto`` handles
        the channel binding itself, so it gets one ``sendto`` a datagram. None before a
        pair is nominated.
        """
        pair = self._conn._nominated.get(1)
        if pair is None or not isinstance(pair.protocol, aioice_ice.StunProtocol):
            return None
        transport = pair.protocol.transport
        addr = pair.remote_addr
        sock = transport.get_extra_info("socket")
        # asyncio hands out a TransportSocket (fileno, family, type), not the socket.
        if pair.local_candidate.type != "relay" and sock is not None:
            batch = batch_sender(sock, addr)
            if batch is not None:
                return batch.send

        def send_each(datagrams: Sequence[bytes]) -> None:
            for data in datagrams:
                transport.sendto(data, addr)

        return send_each

    async def recv(self) -> bytes:
        data: bytes = await self._conn.recv()
        return data

    async def close(self) -> None:
        checks = self._checks
        if checks is not None and not checks.done():
            checks.cancel()
            await asyncio.gather(checks, return_exceptions=True)
        task = self._gather_task
        if task is not None and not task.done():
            task.cancel()
            # Let gathering release what it allocated before the connection closes the rest.
            await asyncio.gather(task, return_exceptions=True)
        await self._conn.close()
        self._conn.gate.close()
