"""Viewer sessions: offer in, answer out, then ICE, DTLS-SRTP and media until the end.

This is the one place that turns an SDP offer into a live viewer: it negotiates (agent/rtc),
gathers and connects (agent/net) and joins the viewer to the fan-out (agent/media) once its
SRTP keys exist. Signalling (MQTT now, anything later) calls it and relays what it reports
through ``on_state`` and ``on_candidate``; it knows nothing of MQTT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from agent.media.fanout import FanOut
from agent.net.driver import PeerDriver
from agent.net.errors import BusyError, CameraUnavailableError, UnknownSessionError
from agent.net.ice import IceServers, IceTransport, usable_host_addresses
from agent.net.inbound import InboundCounters
from agent.net.session_stats import session_row, viewer_key
from agent.rtc.certificate import Certificate
from agent.rtc.datachannel import (
    ChannelBufferedAmountLow,
    ChannelClosed,
    ChannelMessage,
    ChannelOpened,
    ChannelsClosed,
    ChannelsReady,
    DataChannelEvent,
    SctpParams,
)
from agent.rtc.dtls import DtlsRole, SrtpProfile
from agent.rtc.h264 import Sps
from agent.rtc.peer import (
    ApplicationData,
    KeyframeRequested,
    PeerClosed,
    PeerConnected,
    PeerEvent,
    PeerFailed,
    PeerSession,
    VideoSendParams,
)
from agent.rtc.sdp import (
    ANSWER_MAX_MESSAGE_SIZE,
    Answer,
    Fingerprint,
    NegotiationError,
    Offer,
    build_answer,
)

logger = logging.getLogger(__name__)

SessionKey = tuple[str, str]  # (client id, session id): ids are scoped to their client
# Trickled candidates kept for an offer that has not been processed yet, per session, and
# sessions that may have such early candidates: bounded so a client can't fill memory.
MAX_EARLY_CANDIDATES = 64
MAX_EARLY_SESSIONS = 256
MAX_EARLY_SESSIONS_PER_CLIENT = 4
# Remote candidates one session may give (in the offer and trickled): a browser gives a
# handful; aioice re-sorts its check list on each, so a flood would cost the shared loop.
MAX_REMOTE_CANDIDATES = 64
# How long an offer waits for the camera's first keyframe (the stream's SPS says which H.264
# profile to answer with).
STREAM_WAIT = 10.0


# Sessions one client may hold at once (offers being answered included): without a share,
# one client abandoning offers faster than they time out held every viewer slot.
DEFAULT_MAX_SESSIONS_PER_CLIENT = 2


class SessionState(StrEnum):
    """A viewer session's life, as ``webrtc.state`` and ``session.list`` spell it."""

    NEW = "new"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    FAILED = "failed"
    CLOSED = "closed"


StateCallback = Callable[[str, str, str, "str | None"], None]  # client, session, state, reason
CandidateCallback = Callable[[str, str, "str | None"], None]  # client, session, candidate
# client, session, the session's driver (its peer owns the channels; kick() after a send)
ChannelEventCallback = Callable[[str, str, PeerDriver, DataChannelEvent], None]
_CHANNEL_EVENTS = (
    ChannelsReady,
    ChannelOpened,
    ChannelMessage,
    ChannelBufferedAmountLow,
    ChannelClosed,
    ChannelsClosed,
)


@dataclass(slots=True)
class _Session:
    client: str
    session: str
    since: float
    ice: IceTransport
    driver: PeerDriver | None = None
    state: SessionState = SessionState.NEW
    transport_mid: str | None = None
    transport_mline: int = 0
    answered: bool = False
    # Local candidates found before the answer went out are in it; the rest wait here.
    held_candidates: list[str | None] = field(default_factory=list)
    # Remote candidates go to ICE from one task per session, in order: resolving an mDNS
    # name takes up to a second and must hold neither the request nor other sessions.
    remote: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    remote_count: int = 0
    feeder: asyncio.Task[None] | None = None


class SessionManager:
    """All viewer sessions of the device."""

    def __init__(
        self,
        *,
        fanout: FanOut,
        certificate: Certificate,
        ice_addresses: list[str],
        ice_servers: IceServers,
        max_viewers: int,
        on_state: StateCallback,
        on_candidate: CandidateCallback,
        dtls_setup: str | None = "active",
        srtp_profiles: list[SrtpProfile] | None = None,
        accept_datachannel: bool = True,
        max_sessions_per_client: int = DEFAULT_MAX_SESSIONS_PER_CLIENT,
        max_bitrate: int = 2_000_000,
    ) -> None:
        self.fanout = fanout
        self._certificate = certificate
        self._fingerprint = Fingerprint("sha-256", certificate.fingerprint("sha-256"))
        self._ice_addresses = ice_addresses
        self._ice_servers = ice_servers
        self.max_viewers = max_viewers
        self.max_sessions_per_client = max_sessions_per_client
        self._on_state = on_state
        self._on_candidate = on_candidate
        self._dtls_setup = dtls_setup
        self._srtp_profiles = srtp_profiles
        self._accept_datachannel = accept_datachannel
        self._sessions: dict[SessionKey, _Session] = {}
        self._early: dict[SessionKey, list[str | None]] = {}
        self._loop = asyncio.get_running_loop()
        self.on_application_data: Callable[[str, str, bytes], None] | None = None
        self.on_channel_event: ChannelEventCallback | None = None
        self.closing = False
        # The stream's ceiling (camera.bitrate), each viewer's estimate starts from and stays
        # under; and the viewers the bitrate policy last found below its floor (viewer_key).
        self.max_bitrate = max_bitrate
        self.start_bitrate = max_bitrate
        self.below_floor: frozenset[str] = frozenset()

    # --- the API signalling calls --------------------------------------------------------

    async def offer(
        self, client: str, session: str, sdp: str, *, ice_servers: IceServers | None = None
    ) -> str:
        """Answer an offer and start the session; raises NegotiationError, BusyError, ..."""
        key = (client, session)
        offer = Offer.parse(sdp)
        profile_level_id = await self._stream_profile() if offer.video is not None else "42e01f"
        # No renegotiation: a second offer for a session id replaces the session. Every
        # await comes before the checks below, so nothing slips in between check and entry.
        while key in self._sessions:
            await self.close(client, session, "replaced by a new offer")
        self._check_limits(client)

        ice = IceTransport(
            addresses=self._ice_addresses or usable_host_addresses(),
            servers=ice_servers if ice_servers is not None else self._ice_servers,
            # Called only once gathering starts, after `entry` below exists.
            on_candidate=lambda c: self._local_candidate(entry, c),
        )
        entry = _Session(client, session, self._loop.time(), ice)
        self._sessions[key] = entry
        for early in self._early.pop(key, []):
            self._queue_remote(entry, early)
        try:
            answer_sdp = await self._negotiate(entry, offer, profile_level_id)
        except BaseException as exc:
            replaced = self._sessions.get(key) is not entry
            if not replaced:
                del self._sessions[key]
            await self._discard(entry)
            if replaced or isinstance(exc, ConnectionError | asyncio.CancelledError):
                if isinstance(exc, asyncio.CancelledError) and _really_cancelled():
                    raise
                raise UnknownSessionError(
                    f"session {session!r} was closed while its offer was being answered"
                ) from None
            raise
        return answer_sdp

    async def add_candidate(
        self, client: str, session: str, candidate: str | None, mid: str | None = None
    ) -> None:
        """A trickled remote candidate (None: end of candidates); kept if the offer is early."""
        key = (client, session)
        entry = self._sessions.get(key)
        if entry is None:
            self._keep_early(key, candidate)
            return
        if mid is not None and entry.transport_mid is not None and mid != entry.transport_mid:
            return  # a candidate for a transport BUNDLE discarded
        self._queue_remote(entry, candidate)

    def _queue_remote(self, entry: _Session, candidate: str | None) -> None:
        if candidate is not None:
            if entry.remote_count >= MAX_REMOTE_CANDIDATES:
                raise ValueError(f"more than {MAX_REMOTE_CANDIDATES} candidates for a session")
            entry.remote_count += 1
        entry.remote.put_nowait(candidate)

    async def _feed_remote(self, entry: _Session, first: list[str | None]) -> None:
        for candidate in first:
            await self._add_remote(entry, candidate)
        while True:
            await self._add_remote(entry, await entry.remote.get())

    def _keep_early(self, key: SessionKey, candidate: str | None) -> None:
        early = self._early.get(key)
        if early is None:
            # Bounded per client and in all: the oldest waiting session makes room, so no
            # client can lock the others out by trickling for offers it never sends.
            own = [k for k in self._early if k[0] == key[0]]
            if len(own) >= MAX_EARLY_SESSIONS_PER_CLIENT:
                del self._early[own[0]]
            elif len(self._early) >= MAX_EARLY_SESSIONS:
                del self._early[next(iter(self._early))]
            early = self._early[key] = []
        if len(early) < MAX_EARLY_CANDIDATES:
            early.append(candidate)

    async def close(self, client: str, session: str, reason: str = "closed by client") -> None:
        key = (client, session)
        self._early.pop(key, None)
        entry = self._sessions.pop(key, None)
        if entry is None:
            raise UnknownSessionError(f"unknown session {session!r}")
        await self._teardown(entry, SessionState.CLOSED, reason)

    async def close_all(self, reason: str = "device shutting down") -> None:
        """Close every session; offers still being answered are refused from now on."""
        self.closing = True
        entries = list(self._sessions.values())
        self._sessions.clear()
        await asyncio.gather(*(self._teardown(e, SessionState.CLOSED, reason) for e in entries))

    def send_application_data(self, client: str, session: str, data: bytes) -> None:
        entry = self._sessions.get((client, session))
        if entry is not None and entry.driver is not None:
            entry.driver.peer.send_application_data(data)
            entry.driver.kick()

    def rows(self, client: str | None = None) -> list[dict[str, object]]:
        """session.list rows; only ``client``'s sessions when given."""
        return [
            session_row(
                owner,
                session,
                entry.state,
                entry.since,
                entry.driver.peer.stats if entry.driver is not None else None,
                viewer_key(owner, session) in self.below_floor,
            )
            for (owner, session), entry in self._sessions.items()
            if client is None or owner == client
        ]

    def transport_of(self, client: str, session: str) -> tuple[str | None, int]:
        """The mid and m-line index of the offer section whose transport the session uses
        (what a trickled candidate names)."""
        entry = self._sessions.get((client, session))
        return (entry.transport_mid, entry.transport_mline) if entry is not None else (None, 0)

    @property
    def count(self) -> int:
        return len(self._sessions)

    def peers(self) -> list[tuple[str, str, PeerSession]]:
        """(client, session, peer) of every session that has one (for the bitrate policy)."""
        return [(c, s, e.driver.peer) for (c, s), e in self._sessions.items() if e.driver]

    def stats(self) -> list[tuple[str, str, object]]:
        return [(c, s, peer.stats) for c, s, peer in self.peers()]

    def inbound(self) -> list[tuple[str, str, InboundCounters]]:
        """Per session: the datagrams its UDP ports refused or dropped (for telemetry)."""
        return [(c, s, e.ice.counters) for (c, s), e in self._sessions.items()]

    # --- internals -----------------------------------------------------------------------

    def _check_limits(self, client: str) -> None:
        if self.closing:
            raise BusyError("busy: device shutting down", "shutting_down")
        own = sum(1 for owner, _ in self._sessions if owner == client)
        if own >= self.max_sessions_per_client:
            raise BusyError(
                f"busy: per-client limit reached ({own} sessions open for this client, at most"
                f" {self.max_sessions_per_client}): close one first",
                "client_limit",
            )
        if len(self._sessions) >= self.max_viewers:
            raise BusyError(
                f"busy: device viewer limit reached ({self.max_viewers} sessions)", "viewer_limit"
            )

    async def _stream_profile(self) -> str:
        sps = self.fanout.sps
        if sps is None:
            try:
                await asyncio.wait_for(self.fanout.stream_ready.wait(), STREAM_WAIT)
            except TimeoutError:
                raise CameraUnavailableError(
                    f"the camera produced no keyframe within {STREAM_WAIT:.0f} s"
                ) from None
            sps = self.fanout.sps
        assert isinstance(sps, Sps)
        return sps.profile_level_id

    async def _negotiate(self, entry: _Session, offer: Offer, profile_level_id: str) -> str:
        ice = entry.ice
        host_candidates = await ice.start_gathering()
        ssrc, rtx_ssrc = secrets.randbits(32), secrets.randbits(32)
        cname = secrets.token_hex(8)
        answer = build_answer(
            offer,
            ice_ufrag=ice.local_username,
            ice_pwd=ice.local_password,
            fingerprint=self._fingerprint,
            setup=self._dtls_setup,
            candidates=host_candidates,
            end_of_candidates=ice.gathering_done,
            stream_profile_level_id=profile_level_id,
            ssrc=ssrc,
            cname=cname,
            msid=("edgecam", "video"),
            session_id=secrets.randbits(62),
            accept_datachannel=self._accept_datachannel,
            rtx_ssrc=rtx_ssrc,
        )
        if answer.h264 is None and answer.datachannel_mid is None:
            raise NegotiationError("offer has nothing the device can answer")
        entry.transport_mid = answer.transport_mid
        entry.transport_mline = next(
            (i for i, section in enumerate(offer.sections) if section.mid == answer.transport_mid),
            0,
        )
        # Candidates already in the answer must not be trickled again.
        entry.held_candidates = [
            c for c in entry.held_candidates if c is None or c not in host_candidates
        ]
        if ice.gathering_done:
            # All in the answer (with a=end-of-candidates); still say so on the reply topic,
            # as PROTOCOL.md promises every viewer a final null candidate.
            entry.held_candidates = [None]
        ice.set_remote_credentials(offer.ice_ufrag, offer.ice_pwd)
        # The offer's candidates go first, then those trickled before and during this
        # negotiation (already queued); the offer's end-of-candidates closes the list after
        # them.
        first: list[str | None] = list(answer.remote_candidates[:MAX_REMOTE_CANDIDATES])
        entry.remote_count += len(first)
        if answer.remote_end_of_candidates:
            entry.remote.put_nowait(None)
        entry.feeder = self._loop.create_task(self._feed_remote(entry, first))

        peer = self._peer(entry, offer, answer, ssrc, cname)
        entry.driver = PeerDriver(peer, ice, lambda event: self._peer_event(entry, event))
        entry.driver.start()
        entry.answered = True
        # Report state and trickled local candidates only after the answer is out
        # (PROTOCOL.md section 4 order), so no viewer hears of a session it has no answer
        # for: the caller sends the answer before the loop runs these.
        self._loop.call_soon(self._set_state, entry, SessionState.CONNECTING, None)
        self._loop.call_soon(self._release_candidates, entry)
        return answer.sdp

    def _peer(
        self, entry: _Session, offer: Offer, answer: Answer, ssrc: int, cname: str
    ) -> PeerSession:
        video = None
        if answer.h264 is not None and answer.send_video:
            fmt, start = answer.h264, min(self.start_bitrate, self.max_bitrate)
            video = VideoSendParams(fmt.payload_type, ssrc, cname, answer.transport_cc_id,
                fmt.rtx_payload_type, answer.rtx_ssrc, start, self.max_bitrate)  # fmt: skip
        sctp = None
        if answer.datachannel_mid is not None:
            # The association accepts exactly what our answer's a=max-message-size says.
            sctp = SctpParams.from_sdp(
                answer.remote_sctp_port, answer.remote_max_message_size, ANSWER_MAX_MESSAGE_SIZE
            )
        return PeerSession(
            certificate=self._certificate,
            dtls_role=DtlsRole.CLIENT if answer.setup == "active" else DtlsRole.SERVER,
            remote_fingerprints=[(f.algorithm, f.value) for f in offer.fingerprints],
            video=video,
            wallclock_offset=PeerDriver.wallclock_offset(),
            srtp_profiles=self._srtp_profiles,
            name=f"session {entry.client}/{entry.session}",
            sctp=sctp,
        )

    async def _add_remote(self, entry: _Session, candidate: str | None) -> None:
        try:
            await entry.ice.add_remote_candidate(candidate)
        except Exception as exc:  # a bad candidate costs this candidate, nothing more
            logger.warning("session %s/%s: candidate dropped: %s", entry.client, entry.session, exc)

    def _local_candidate(self, entry: _Session, candidate: str | None) -> None:
        if self._sessions.get((entry.client, entry.session)) is not entry:
            return
        if entry.answered:
            self._on_candidate(entry.client, entry.session, candidate)
        else:
            entry.held_candidates.append(candidate)

    def _release_candidates(self, entry: _Session) -> None:
        if self._sessions.get((entry.client, entry.session)) is not entry:
            return
        held, entry.held_candidates = entry.held_candidates, []
        for candidate in held:
            self._on_candidate(entry.client, entry.session, candidate)

    def _peer_event(self, entry: _Session, event: PeerEvent) -> None:
        key = (entry.client, entry.session)
        # Events of a session that was closed or replaced change nothing any more.
        if self._sessions.get(key) is not entry or entry.driver is None:
            return
        now = self._loop.time()
        if isinstance(event, PeerConnected):
            self._set_state(entry, SessionState.CONNECTED, None)
            if entry.driver.peer.srtp_ready and entry.driver.peer.sends_video:
                self.fanout.add(entry.driver, now)
        elif isinstance(event, KeyframeRequested):
            self.fanout.request_keyframe(now)
        elif isinstance(event, _CHANNEL_EVENTS):
            if self.on_channel_event is not None:
                self.on_channel_event(entry.client, entry.session, entry.driver, event)
        elif isinstance(event, ApplicationData):
            if self.on_application_data is not None:
                self.on_application_data(entry.client, entry.session, event.data)
        elif isinstance(event, PeerFailed | PeerClosed):
            if entry.feeder is not None:
                entry.feeder.cancel()
            self.fanout.remove(entry.driver)
            self._sessions.pop(key, None)
            state = SessionState.FAILED if isinstance(event, PeerFailed) else SessionState.CLOSED
            self._set_state(entry, state, event.reason)

    async def _teardown(self, entry: _Session, state: SessionState, reason: str) -> None:
        await self._discard(entry, reason)
        self._set_state(entry, state, reason)

    async def _discard(self, entry: _Session, reason: str = "closed") -> None:
        """Stop everything the session holds: candidate feeder, peer, ICE sockets."""
        if entry.feeder is not None:
            entry.feeder.cancel()
        if entry.driver is not None:
            self.fanout.remove(entry.driver)
            with contextlib.suppress(Exception):
                await entry.driver.close(reason)
        else:
            with contextlib.suppress(Exception):
                await entry.ice.close()

    def _set_state(self, entry: _Session, state: SessionState, reason: str | None) -> None:
        if entry.state == state or entry.state in (SessionState.FAILED, SessionState.CLOSED):
            return
        logger.info(
            "session %s/%s: %s -> %s%s",
            entry.client,
            entry.session,
            entry.state,
            state,
            f" ({reason})" if reason else "",
        )
        entry.state = state
        try:
            self._on_state(entry.client, entry.session, state, reason)
        except Exception:
            logger.exception("session state callback failed")


def _really_cancelled() -> bool:
    """Whether the running task itself is being cancelled (not just something it awaited)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
