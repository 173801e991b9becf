"""`edgecam ctl` without a broker: typed values, params, settings precedence, help, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.client import ConnectError
from agent.client.profile import resolve_settings
from agent.tools.cli import main
from agent.tools.ctl_output import parse_assignments, typed_value


def test_values_are_typed_as_json_else_kept_as_text() -> None:
    assert parse_assignments(["bitrate=1000000", "quality=80", "framerate=12.5"]) == {
        "bitrate": 1_000_000,
        "quality": 80,
        "framerate": 12.5,
    }
    assert typed_value("true") is True and typed_value("null") is None
    assert typed_value("cam-01") == "cam-01" and typed_value('"80"') == "80"
    assert typed_value('{"a": [1]}') == {"a": [1]}
    with pytest.raises(ValueError, match="expected key=value"):
        parse_assignments(["bitrate"])


@given(st.integers())
def test_any_integer_stays_an_integer(n: int) -> None:
    assert parse_assignments([f"n={n}"]) == {"n": n}


def test_flags_beat_environment_beat_profile(tmp_path: Path) -> None:
    profiles = tmp_path / "client.toml"
    profiles.write_text(
        '[lab]\nurl = "mqtts://lab:8883"\nca = "~/ca.pem"\ncert = "c.pem"\nkey = "k.pem"\n'
        'topic_prefix = "lab"\n[default]\nurl = "mqtts://default:8883"\n'
    )
    env = {"EDGECAM_CLIENT_CONFIG": str(profiles), "EDGECAM_CERT": "env.pem"}
    lab = resolve_settings({"key": "flag.key"}, "lab", env)
    assert lab.broker == "mqtts://lab:8883" and lab.prefix == "lab"
    assert lab.cert == "env.pem" and lab.key == "flag.key"
    assert lab.ca == str(Path("~/ca.pem").expanduser())
    assert resolve_settings({}, None, env).broker == "mqtts://default:8883"
    with pytest.raises(ConnectError, match=r"no profile \[nope\]"):
        resolve_settings({}, "nope", env)
    profiles.write_text('[lab]\nurl = "mqtts://lab"\nbroker_url = "x"\n')
    with pytest.raises(ConnectError, match="unknown key 'broker_url'"):
        resolve_settings({}, "lab", env)


def test_without_a_broker_it_says_how_to_give_one(tmp_path: Path) -> None:
    env = {"EDGECAM_CLIENT_CONFIG": str(tmp_path / "none.toml")}
    with pytest.raises(ConnectError, match="give --broker URL, EDGECAM_BROKER, or a profile"):
        resolve_settings({}, None, env)


def test_help_names_every_option_and_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["ctl", "--help"])
    assert exit_info.value.code == 0
    top = capsys.readouterr().out
    words = "--broker --ca --cert --key --prefix --client-id --allow-insecure --profile"
    words += " edgecam client.toml EDGECAM_BROKER devices call snapshot events telemetry"
    for word in words.split():
        assert word in top, word
    with pytest.raises(SystemExit):
        main(["ctl", "call", "--help"])
    call = capsys.readouterr().out
    for word in ("--params", "--json", "--timeout", "default 10", "--parallel", "default 16"):
        assert word in call, word


def test_plain_mqtt_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGECAM_CLIENT_CONFIG", str(tmp_path / "none.toml"))
    code = main(["ctl", "--broker", "mqtt://127.0.0.1:1", "--client-id", "x", "devices"])
    assert code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--allow-insecure" in err


def test_bad_params_are_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["ctl", "call", "cam-1", "stream.set", "--params", "[1]"])
    assert exit_info.value.code == 2
    assert "--params must be a JSON object" in capsys.readouterr().err
