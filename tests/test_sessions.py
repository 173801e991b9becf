"""SessionManager's rules that need no peer: limits, unknown sessions, early candidates."""

from __future__ import annotations

from typing import Any

import pytest

from agent import sessions
from agent.media.fanout import FanOut
from agent.net.ice import IceServers
from agent.rtc.certificate import Certificate
from agent.rtc.sdp import NegotiationError
from agent.sessions import (
    MAX_EARLY_SESSIONS_PER_CLIENT,
    CameraUnavailableError,
    SessionManager,
    UnknownSessionError,
)
from tests.e2e.aiortc_viewer import AiortcViewer, loopback_only_host_addresses

CERT = Certificate.generate()


def manager(**kwargs: Any) -> SessionManager:
    return SessionManager(
        fanout=FanOut(lambda: None),
        certificate=CERT,
        ice_addresses=["127.0.0.1"],
        ice_servers=IceServers(),
        max_viewers=kwargs.pop("max_viewers", 4),
        on_state=lambda *a: None,
        on_candidate=lambda *a: None,
        **kwargs,
    )


async def test_closing_an_unknown_session_is_an_error() -> None:
    with pytest.raises(UnknownSessionError):
        await manager().close("viewer-1", "nope")


async def test_session_ids_are_scoped_to_their_client() -> None:
    m = manager()
    await m.add_candidate("viewer-1", "s", "1 1 udp 1 127.0.0.1 5000 typ host")
    assert ("viewer-1", "s") in m._early and ("viewer-2", "s") not in m._early
    with pytest.raises(UnknownSessionError):
        await m.close("viewer-2", "s")


async def test_early_candidates_are_bounded_per_client() -> None:
    m = manager()
    for index in range(MAX_EARLY_SESSIONS_PER_CLIENT + 2):
        await m.add_candidate("greedy", f"s{index}", "1 1 udp 1 127.0.0.1 5000 typ host")
    await m.add_candidate("polite", "p", "1 1 udp 1 127.0.0.1 5000 typ host")
    greedy = [key for key in m._early if key[0] == "greedy"]
    assert len(greedy) == MAX_EARLY_SESSIONS_PER_CLIENT
    assert ("greedy", "s0") not in m._early  # the oldest made room
    assert ("polite", "p") in m._early
    for _ in range(sessions.MAX_EARLY_CANDIDATES + 10):
        await m.add_candidate("polite", "p", "1 1 udp 1 127.0.0.1 5000 typ host")
    assert len(m._early[("polite", "p")]) == sessions.MAX_EARLY_CANDIDATES


async def test_no_keyframe_means_camera_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    loopback_only_host_addresses(monkeypatch)
    monkeypatch.setattr(sessions, "STREAM_WAIT", 0.05)
    viewer = AiortcViewer()
    try:
        with pytest.raises(CameraUnavailableError, match="no keyframe"):
            await manager().offer("viewer-1", "s", await viewer.offer())
    finally:
        await viewer.close()


async def test_a_malformed_offer_leaves_no_session_behind() -> None:
    m = manager()
    with pytest.raises(NegotiationError):
        await m.offer("viewer-1", "s", "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n")
    assert m.count == 0 and m.rows() == []
