"""PeerSession with a datachannel: SCTP starts after DTLS, over real DTLS both ways."""

from __future__ import annotations

from agent.rtc.certificate import Certificate
from agent.rtc.datachannel import (
    ChannelMessage,
    ChannelOpened,
    ChannelOptions,
    ChannelsClosed,
    SctpParams,
)
from agent.rtc.dtls import DtlsRole
from agent.rtc.peer import PeerConnected, PeerEvent, PeerSession
from tests.rtc.pair import Pair

AGENT_CERT = Certificate.generate()
VIEWER_CERT = Certificate.generate()


def make_sessions() -> tuple[PeerSession, PeerSession]:
    params = SctpParams(remote_port=5000, max_message_size=1024 * 1024)
    agent = PeerSession(
        certificate=AGENT_CERT,
        dtls_role=DtlsRole.SERVER,
        remote_fingerprints=[("sha-256", VIEWER_CERT.fingerprint("sha-256"))],
        video=None,
        name="agent",
        sctp=params,
    )
    viewer = PeerSession(
        certificate=VIEWER_CERT,
        dtls_role=DtlsRole.CLIENT,
        remote_fingerprints=[("sha-256", AGENT_CERT.fingerprint("sha-256"))],
        video=None,
        name="viewer",
        sctp=params,
    )
    return agent, viewer


def drain(session: PeerSession, into: list[PeerEvent]) -> bool:
    while (event := session.next_event()) is not None:
        into.append(event)
    return True


def test_channel_over_dtls_both_ways_and_close() -> None:
    agent, viewer = make_sessions()
    agent_events: list[PeerEvent] = []
    viewer_events: list[PeerEvent] = []
    assert viewer.channels is not None and agent.channels is not None
    control = viewer.channels.open_channel(ChannelOptions("control"), 0.0)
    pair = Pair(agent, viewer)
    agent.start(0.0)
    viewer.start(0.0)

    def both_open() -> bool:
        drain(agent, agent_events)
        drain(viewer, viewer_events)
        return any(isinstance(e, ChannelOpened) for e in agent_events) and any(
            isinstance(e, ChannelOpened) for e in viewer_events
        )

    pair.run(both_open)
    assert any(isinstance(e, PeerConnected) for e in agent_events)
    assert control == 0  # the DTLS client's channels are even
    opened = next(e for e in agent_events if isinstance(e, ChannelOpened))
    assert opened == ChannelOpened(0, "control", "")
    agent.channels.send(control, '{"jsonrpc":"2.0"}', pair.now)
    viewer.channels.send(control, b"\x00" * 300_000, pair.now)

    def both_got() -> bool:
        drain(agent, agent_events)
        drain(viewer, viewer_events)
        return any(isinstance(e, ChannelMessage) for e in agent_events) and any(
            isinstance(e, ChannelMessage) for e in viewer_events
        )

    pair.run(both_got)
    assert ChannelMessage(0, '{"jsonrpc":"2.0"}') in viewer_events
    assert ChannelMessage(0, b"\x00" * 300_000) in agent_events
    agent.close(pair.now, "bye")
    pair.pump()
    drain(viewer, viewer_events)
    assert ChannelsClosed("aborted by peer: bye") in viewer_events



def test_a_datachannel_only_session_runs_its_timers_once_connected() -> None:
    # SRTP keys exist, but no video sender: the timers must not try to pace a stream.
    agent, viewer = make_sessions()
    pair = Pair(agent, viewer)
    agent.start(0.0)
    viewer.start(0.0)
    pair.run(lambda: agent.srtp_ready and viewer.srtp_ready)
    assert agent.sender is None
    agent.handle_timer(pair.now + 60.0)
    assert agent.state.value == "connected"
