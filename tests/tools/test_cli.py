"""The `edgecam` command line: help, check and run with bad configs."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.tools.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_help_explains_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("run", "check", "demo", "bench"):
        assert command in out


def test_check_accepts_a_good_config_and_names_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.toml"
    good.write_text(
        '[device]\nid = "cam-01"\nstate_dir = "%s"\n[mqtt]\nurl = "mqtt://127.0.0.1"\n'
        'allow_insecure = true\n[camera]\nsource = "testsrc"\n' % (tmp_path / "state")
    )
    assert main(["check", "--config", str(good)]) == 0
    assert f"ok: {good}" in capsys.readouterr().out

    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[device]\nid = "cam-01"\n[mqtt]\nurl = "mqtt://127.0.0.1"\n[camera]\nframrate = 3\n'
    )
    assert main(["check", "--config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "mqtt.url" in err and "allow_insecure" in err
    assert f"{bad}:6" in err and "camera.framrate" in err and "framerate" in err


def test_run_refuses_a_broken_config_naming_file_and_key(tmp_path: Path) -> None:
    config = tmp_path / "edgecam.toml"
    config.write_text('[device]\nid = "cam 01"\n[mqtt]\nurl = "mqtts://broker"\n')
    done = subprocess.run(
        [sys.executable, "-m", "agent.tools.cli", "run", "--config", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert str(config) in done.stderr and "device.id" in done.stderr


def test_the_example_config_passes_check_apart_from_its_files(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The example names files that exist only on a device: check reports exactly those.
    example = ROOT / "config" / "edgecam.example.toml"
    assert main(["check", "--config", str(example)]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines
    for line in lines:
        if line == f"warning: {example}: holds a password or TURN credential and is " + (
            "readable by every user"
        ):
            continue  # the file's own mode: no key to point at
        severity, _, rest = line.partition(f": {example}:")
        number, _, key = rest.partition(": ")
        assert severity in ("error", "warning") and number.isdigit(), line
        assert key.startswith(("mqtt.", "device.", "camera.")), line


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["bench", "fanout", "--viewers", "0"], "--viewers"),
        (["demo", "--size", "641x480"], "--size"),
        (["demo", "--size", "big"], "--size"),
        (["demo", "--framerate", "0"], "--framerate"),
        (["demo", "--bitrate", "10"], "--bitrate"),
        (["run", "--config", "x.toml", "--log-level", "verbose"], "--log-level"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(argv: list[str], names: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "agent.tools.cli", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and names in lines[0] and "error" in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def test_demo_refuses_an_explicit_port_that_is_taken() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "agent.tools.cli", "demo", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        )
    assert done.returncode == 2, done.stderr
    assert f"--port {port}" in done.stderr and "Traceback" not in done.stderr


def test_demo_without_the_vendored_mqtt_js_stops_at_once_saying_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import agent.tools.demo as demo

    monkeypatch.setattr(demo, "WEB_ROOT", tmp_path)  # a web root without vendor/mqtt.min.js
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--port", "0"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err]
    assert "mqtt.min.js is missing" in err and "make web-deps" in err
    (tmp_path / "vendor").mkdir()
    (tmp_path / "vendor" / "mqtt.min.js").write_text("// mqtt.js")
    assert demo.missing_web_asset() is None


def _every_parser(
    parser: argparse.ArgumentParser,
) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _every_parser(sub)


RST_MARKUP = ("``", "`", ":option:", ":class:", ":func:", "**", "\n.. ")


def _bench_parsers(monkeypatch: pytest.MonkeyPatch) -> list[argparse.ArgumentParser]:
    """Each bench scenario's parser, as its main() builds it (run_scenario is caught)."""
    import importlib

    from agent.tools import bench, bench_network
    from agent.tools.bench import inprocess

    parsers: list[argparse.ArgumentParser] = [
        inprocess.build_parser(),
        bench_network.build_parser(),
    ]

    def caught(parser: argparse.ArgumentParser, run: object, argv: object) -> int:
        parsers.append(parser)
        return 0

    for scenario in bench.SCENARIOS.values():
        module = importlib.import_module(scenario.module)
        if hasattr(module, "run_scenario"):
            monkeypatch.setattr(module, "run_scenario", caught)
            assert module.main([]) == 0
    assert len(parsers) >= len(bench.SCENARIOS)
    return parsers


def test_every_help_gives_each_options_meaning_and_default_in_plain_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from agent.tools import cli, ctl

    roots = [cli._parser(), ctl._parser(), *_bench_parsers(monkeypatch)]
    parsers = [p for root in roots for p in _every_parser(root)]
    assert len(parsers) >= 20  # edgecam, its commands, ca's actions, ctl's, bench's scenarios
    for parser in parsers:
        text = parser.format_help()
        for markup in RST_MARKUP:
            assert markup not in text, f"{parser.prog}: {markup!r} in its help"
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction | argparse._VersionAction):
                continue
            if isinstance(action, argparse._SubParsersAction):
                continue
            where = f"{parser.prog} {'/'.join(action.option_strings) or action.dest}"
            assert action.help, f"{where}: no help"
            shown = action.default not in (None, False, [], argparse.SUPPRESS)
            if shown and not action.required:
                assert "default" in action.help, f"{where}: help does not give the default"
