"""`edgecam bench fanout` runs end to end (its figures are read by people, not asserted)."""

from __future__ import annotations

import pytest

from agent.rtc.certificate import Certificate
from agent.rtc.dtls import SrtpProfile
from agent.tools.bench import connected_peer
from agent.tools.cli import main


def test_bench_fanout_reports_cost_per_viewer(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "fanout", "--viewers", "2", "--seconds", "1", "--size", "320x240"]) == 0
    out = capsys.readouterr().out
    assert "30 frames" in out
    assert "per viewer:" in out and "ms CPU per second of video" in out


def test_bench_fanout_with_datachannels_sets_up_an_open_channel_per_viewer(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["bench", "fanout", "--viewers", "2", "--seconds", "1", "--size", "320x240"]
    assert main([*args, "--datachannel"]) == 0
    assert "with an idle datachannel each: per viewer" in capsys.readouterr().out


def test_bench_peer_with_datachannel_has_its_channel_open() -> None:
    peer = connected_peer(Certificate.generate(), SrtpProfile.AEAD_AES_128_GCM, datachannel=True)
    assert peer.channels is not None
    assert [c.label for c in peer.channels.channels.values()] == ["control"]
    assert peer.channels.channels[0].state.value == "open"
