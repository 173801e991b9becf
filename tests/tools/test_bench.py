"""`edgecam bench fanout` runs end to end (its figures are read by people, not asserted)."""

from __future__ import annotations

import pytest

from agent.tools.cli import main


def test_bench_fanout_reports_cost_per_viewer(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "fanout", "--viewers", "2", "--seconds", "1", "--size", "320x240"]) == 0
    out = capsys.readouterr().out
    assert "30 frames" in out
    assert "per viewer:" in out and "ms CPU per second of video" in out
