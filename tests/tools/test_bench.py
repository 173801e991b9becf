"""`edgecam bench` scenarios run end to end, tiny: each prints its table, writes JSON with the
keys and a PNG. Their figures are read by people, never asserted here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agent.rtc.certificate import Certificate
from agent.rtc.dtls import SrtpProfile
from agent.tools import bench
from agent.tools.bench import startup
from agent.tools.bench.inprocess import connected_peer
from agent.tools.cli import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JSON_KEYS = {"scenario", "machine", "params", "columns", "rows", "notes"}


def _run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], scenario: str, *options: str
) -> tuple[str, dict[str, Any]]:
    out_json, out_png = tmp_path / "out.json", tmp_path / "out.png"
    argv = ["bench", scenario, *options, "--json", str(out_json), "--plot", str(out_png)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert out_png.read_bytes().startswith(PNG_MAGIC)
    result = json.loads(out_json.read_text())
    assert set(result) >= JSON_KEYS
    assert result["scenario"] == scenario
    assert {"nproc", "cpu", "kernel"} <= set(result["machine"])
    header = "  ".join(result["columns"])
    assert captured.out.split("\n", 1)[0].split() == header.split()  # the table, first line
    assert f"{scenario}:" in captured.err  # progress went to stderr
    return captured.out, result


def _rows(result: dict[str, Any], column: str, value: object) -> list[dict[str, Any]]:
    return [row for row in result["rows"] if row[column] == value]


def test_fanout_measures_ours_aiortc_and_the_floor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    options = ["--viewers", "1,2", "--seconds", "1", "--size", "320x240", "--aiortc-max", "1"]
    _, result = _run(tmp_path, capsys, "fanout", *options)
    ours = [r for r in _rows(result, "sender", "ours") if r["viewers"]]
    assert [r["viewers"] for r in ours] == [1, 2]
    assert all(r["failed"] == 0 and r["packets_per_s"] > 0 for r in ours)
    assert [r["viewers"] for r in _rows(result, "sender", "aiortc") if r["viewers"]] == [1]
    assert _rows(result, "sender", "floor")[0]["us_per_packet"] > 0
    assert any("knee" in note for note in result["notes"])


def test_footprint_reports_memory_threads_fds_and_imports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, result = _run(tmp_path, capsys, "footprint", "--viewers", "1", "--runs", "1")
    whats = [row["what"] for row in result["rows"]]
    assert "import agent.runtime.app" in whats
    ours = _rows(result, "what", "ours")
    assert [r["viewers"] for r in ours] == [0, 1]
    assert all(r["rss_mb"] > 0 and r["fds"] > 0 and r["threads"] > 0 for r in ours)
    assert _rows(result, "what", "aiortc")


def test_latency_reports_capture_to_socket_and_glass_to_glass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, result = _run(tmp_path, capsys, "latency", "--viewers", "1", "--seconds", "1")
    whats = [row["what"] for row in result["rows"]]
    assert whats == [
        "capture to socket x1",
        "capture to last packet (paced) x1",
        "glass to glass (Chromium) x1",
    ]
    assert all(row["samples"] > 0 for row in result["rows"])


def test_startup_times_each_phase_for_ours_and_aiortc(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, result = _run(tmp_path, capsys, "startup", "--runs", "1", "--size", "320x240")
    whats = [row["what"] for row in result["rows"]]
    assert whats == [f"{k} {p}" for k in ("ours", "aiortc") for p in startup.PHASES]
    assert all(row["runs"] == 1 for row in _rows(result, "what", "ours first"))


def test_control_times_mqtt_and_the_datachannel(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, result = _run(tmp_path, capsys, "control", "--runs", "3")
    assert [row["transport"] for row in result["rows"]] == [
        "mqtt (TLS, QoS 1)",
        "datachannel (aiortc)",
        "mqtt, no TCP_NODELAY",
    ]
    assert all(row["calls"] == 3 for row in result["rows"])


def test_a_registered_scenario_runs_by_its_name(capsys: pytest.CaptureFixture[str]) -> None:
    bench.register("probe", "agent.tools.bench.inprocess", "the in-process path, renamed")
    try:
        assert bench.main(["probe", "--viewers", "1", "--seconds", "1", "--size", "320x240"]) == 0
    finally:
        del bench.SCENARIOS["probe"]
    assert "per viewer:" in capsys.readouterr().out


def test_the_network_scenario_is_listed_exactly_when_its_module_exists() -> None:
    import importlib.util

    present = importlib.util.find_spec("agent.tools.bench_network") is not None
    assert ("network" in bench.SCENARIOS) is present


def test_inprocess_reports_cost_per_viewer(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["bench", "inprocess", "--viewers", "2", "--seconds", "1", "--size", "320x240"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "30 frames" in out
    assert "per viewer:" in out and "ms CPU per second of video" in out


def test_inprocess_with_datachannels_sets_up_an_open_channel_per_viewer(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["bench", "inprocess", "--viewers", "2", "--seconds", "1", "--size", "320x240"]
    assert main([*args, "--datachannel"]) == 0
    assert "with an idle datachannel each: per viewer" in capsys.readouterr().out


def test_bench_peer_with_datachannel_has_its_channel_open() -> None:
    peer = connected_peer(Certificate.generate(), SrtpProfile.AEAD_AES_128_GCM, datachannel=True)
    assert peer.channels is not None
    assert [c.label for c in peer.channels.channels.values()] == ["control"]
    assert peer.channels.channels[0].state.value == "open"
