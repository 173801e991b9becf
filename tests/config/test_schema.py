"""agent/config.py (and its reader, agent/config_reader.py): load, validate, patch, persist."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.config import (
    OVERRIDE_FILE,
    AccessConfig,
    Config,
    ConfigError,
    IceUrl,
    Role,
    apply_patch,
    load_config,
    parse_ice_url,
    redacted,
    save_overrides,
    to_dict,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "edgecam.example.toml"


def minimal(state_dir: Path) -> str:
    return f'[device]\nid = "cam-01"\nstate_dir = "{state_dir}"\n\n[mqtt]\nurl = "mqtts://b:8883"\n'


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


def write(tmp_path: Path, text: str, name: str = "edgecam.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems_of(path: Path, **kwargs: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, **kwargs)
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


# ---------------------------------------------------------------- the example file


def test_example_loads_without_the_files_it_names() -> None:
    config = load_config(EXAMPLE, state_dir_overrides=False)
    assert config.device.id == "cam-01"
    assert config.mqtt.tls and config.mqtt.host == "broker.example" and config.mqtt.port == 8883
    assert config.mqtt.client_id == "cam-01"
    assert config.camera.bitrate == 2_000_000
    assert [u.scheme for s in config.webrtc.ice_servers for u in s.parsed] == [
        "stun",
        "turn",
        "turns",
    ]
    assert config.access.role_for("ops-7") is Role.OPERATOR
    assert not Path(config.mqtt.ca or "").exists()  # so this proves load opens no named file


def test_example_documents_every_key() -> None:
    text = EXAMPLE.read_text()
    config = load_config(EXAMPLE, state_dir_overrides=False)
    for section in (f.name for f in dataclasses.fields(Config)):
        block = re.search(rf"^\[{section}\]\n(.*?)(?=^\[|\Z)", text, re.M | re.S)
        assert block, f"[{section}] missing from the example"
        config_class = type(getattr(config, section))
        for field in dataclasses.fields(config_class):
            assert re.search(rf"^#? ?{field.name} =", block[1], re.M), f"{section}.{field.name}"
    for key in ("urls", "username", "credential", "count", "period"):
        assert f"{key} =" in text


def test_minimal_file_takes_the_defaults(tmp_path: Path, state_dir: Path) -> None:
    config = load_config(write(tmp_path, minimal(state_dir)))
    assert config.camera.source == "picamera2" and config.camera.framerate == 30.0
    assert config.webrtc.max_viewers == 8 and config.webrtc.dtls_role == "active"
    assert config.webrtc.offer_rate_limit.count == 5
    assert config.webrtc.offer_rate_limit.period == 10.0
    assert config.access.role_for("anyone") is None
    assert config.telemetry.interval == 10.0
    assert config.logging.level_number == 20
    assert config.mqtt.keepalive == 60 and config.mqtt.topic_prefix == "edgecam"


# ---------------------------------------------------------------- errors name file, key, line

BAD_VALUES = [
    ("camera", "framerate", '"thirty"', 'expected a number, got "thirty"'),
    ("camera", "framerate", "121", "must be 1..120, got 121"),
    ("camera", "framerate", "nan", "must be 1..120, got nan"),
    ("camera", "width", "641", "must be even"),
    ("camera", "height", "0", "must be 2..4320, got 0"),
    ("camera", "bitrate", "49_999", "must be 50000..50000000, got 49999"),
    ("camera", "bitrate", "true", "expected an integer, got true"),
    ("camera", "source", '"usb"', 'expected one of "picamera2", "v4l2", "file", "testsrc"'),
    ("webrtc", "max_viewers", "65", "must be 1..64, got 65"),
    ("webrtc", "dtls_role", '"client"', 'expected one of "auto", "active", "passive"'),
    ("webrtc", "ice_addresses", '"127.0.0.1"', 'expected an array of strings, got "127.0.0.1"'),
    ("mqtt", "topic_prefix", '"cams/+"', "must not contain the MQTT wildcards + and #"),
    ("mqtt", "topic_prefix", '"cams/#"', "must not contain the MQTT wildcards + and #"),
    ("mqtt", "topic_prefix", '"/cams"', "no leading or trailing '/'"),
    ("mqtt", "topic_prefix", '"cams/"', "no leading or trailing '/'"),
    ("mqtt", "allow_insecure", '"yes"', 'expected true or false, got "yes"'),
    ("mqtt", "keepalive", "1", "must be 5..3600, got 1"),
    ("mqtt", "url", '"https://b"', 'expected mqtts://host[:port], got "https://b"'),
    ("telemetry", "interval", "0", "must be 1..86400, got 0"),
    ("logging", "level", '"verbose"', 'expected one of "debug", "info"'),
    ("access", "admin", '["ok", 3]', None),
]


def document(state_dir: Path, table: str, key: str, value: str) -> str:
    """A valid file but for ``table.key = value``, which follows a comment line."""
    tables = {"device": {"id": '"cam-01"', "state_dir": f'"{state_dir}"'}}
    tables["mqtt"] = {"url": '"mqtts://b:8883"'}
    tables.setdefault(table, {}).pop(key, None)
    tables[table]["# a comment line\n" + key] = value
    return "".join(
        f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items()) + "\n"
        for name, keys in tables.items()
    )


@pytest.mark.parametrize(("table", "key", "value", "message"), BAD_VALUES)
def test_bad_value_names_file_line_and_key(
    tmp_path: Path, state_dir: Path, table: str, key: str, value: str, message: str | None
) -> None:
    text = document(state_dir, table, key, value)
    path = write(tmp_path, text)
    line = text.splitlines().index(f"{key} = {value}") + 1
    [problem] = problems_of(path)
    if message is None:  # the one case of an array: the element is named
        assert problem == f"{path}:{line}: {table}.{key}[1]: expected a string, got 3"
    else:
        assert problem.startswith(f"{path}:{line}: {table}.{key}: "), problem
        assert message in problem


def test_device_id_rules(tmp_path: Path, state_dir: Path) -> None:
    for bad in ("", "cam 01", "a" * 65, "cam/1", "cäm"):
        text = minimal(state_dir).replace('"cam-01"', json.dumps(bad))
        [problem] = problems_of(write(tmp_path, text))
        assert problem.startswith(f"{tmp_path}/edgecam.toml:2: device.id: must be 1 to 64")
    text = minimal(state_dir).replace('"cam-01"', '"Cam_01.a-b"')
    assert load_config(write(tmp_path, text)).device.id == "Cam_01.a-b"


def test_missing_required_key_points_at_its_table(tmp_path: Path, state_dir: Path) -> None:
    text = minimal(state_dir).replace('id = "cam-01"\n', "")
    path = write(tmp_path, text)
    assert problems_of(path) == [f"{path}:1: device.id: required key is missing"]
    path = write(tmp_path, "")
    assert problems_of(path) == [
        f"{path}: device.id: required key is missing",
        f"{path}: mqtt.url: required key is missing",
    ]


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[device]\nid = "cam-01"\nstate_dir = /var/lib\n')
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:3: syntax error: Invalid value")


@pytest.mark.parametrize(
    "text", ["a = " + "[" * 3000, "a = " + "9" * 5000, "x = 1\nx = 2\n", "\ufeffa = 1"]
)
def test_pathological_toml_is_a_config_error(tmp_path: Path, text: str) -> None:
    [problem] = problems_of(write(tmp_path, text))
    assert problem.startswith(f"{tmp_path}/edgecam.toml") and "syntax error" in problem


def test_unreadable_and_non_utf8_files(tmp_path: Path) -> None:
    assert problems_of(tmp_path / "nope.toml") == [
        f"{tmp_path}/nope.toml: cannot read: No such file or directory"
    ]
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'a = "\xe9"')
    assert problems_of(path) == [f"{path}: not UTF-8 text (byte 5)"]


def test_unknown_keys_are_named_with_the_closest_known_key(tmp_path: Path, state_dir: Path) -> None:
    text = minimal(state_dir) + "\n[camra]\nwidth = 640\n\n[camera]\nframrate = 25\nzzz = 1\n"
    path = write(tmp_path, text)
    assert problems_of(path) == [
        f'{path}:8: camra: unknown key; did you mean "camera"?',
        f'{path}:12: camera.framrate: unknown key; did you mean "framerate"?',
        f"{path}:13: camera.zzz: unknown key",
    ]


def test_every_problem_is_reported_at_once_in_file_order(tmp_path: Path) -> None:
    text = (
        '[mqtt]\nurl = "mqtt://b"\nkeepalive = "60"\n\n'
        '[camera]\nwidth = 641\nframerate = "thirty"\n\n'
        '[device]\nid = "bad id"\n'
    )
    path = write(tmp_path, text)
    problems = problems_of(path)
    assert [p.split(": ", 2)[:2] for p in problems] == [
        [f"{path}:2", "mqtt.url"],
        [f"{path}:3", "mqtt.keepalive"],
        [f"{path}:6", "camera.width"],
        [f"{path}:7", "camera.framerate"],
        [f"{path}:10", "device.id"],
    ]


def test_lines_inside_arrays_and_arrays_of_tables(tmp_path: Path, state_dir: Path) -> None:
    inline = minimal(state_dir) + (
        "\n[webrtc]\nice_servers = [\n"
        '  { urls = "stun:ok" },  # fine\n'
        '  { urls = ["stun:ok",\n           "stun://bad"] },\n'
        "]\noffer_rate_limit = { count = 5, period = 0 }\n"
    )
    path = write(tmp_path, inline)
    assert problems_of(path) == [
        f"{path}:11: webrtc.ice_servers[1].urls[1]: \"stun://bad\": ICE URLs have no '//' "
        "(write stun:host:port)",
        f"{path}:14: webrtc.offer_rate_limit.period: must be 0.1..3600, got 0",
    ]
    tables = minimal(state_dir) + (
        '\n[[webrtc.ice_servers]]\nurls = ["stun:ok"]\n\n'
        '[[webrtc.ice_servers]]\nurls = ["turn:t"]\nusername = "u"\n'
        'credental = "p"\n'
    )
    path = write(tmp_path, tables)
    assert problems_of(path) == [
        f"{path}:11: webrtc.ice_servers[1].credential: required for a turn:/turns: URL",
        f'{path}:14: webrtc.ice_servers[1].credental: unknown key; did you mean "credential"?',
    ]


def test_dotted_keys_are_located(tmp_path: Path, state_dir: Path) -> None:
    path = write(tmp_path, minimal(state_dir) + 'camera.framerate = "x"\n')
    assert problems_of(path) == [f'{path}:7: mqtt.camera: unknown key; did you mean "cert"?']
    path = write(tmp_path, 'camera.framerate = "x"\n' + minimal(state_dir))
    assert problems_of(path) == [f'{path}:1: camera.framerate: expected a number, got "x"']


# ---------------------------------------------------------------- MQTT URL and secrets


def test_plain_mqtt_is_refused_without_allow_insecure(tmp_path: Path, state_dir: Path) -> None:
    text = minimal(state_dir).replace("mqtts://b:8883", "mqtt://localhost")
    path = write(tmp_path, text)
    assert problems_of(path) == [
        f"{path}:6: mqtt.url: plain mqtt:// sends credentials and video offers unencrypted; "
        "use mqtts:// or set mqtt.allow_insecure = true"
    ]
    upper = write(tmp_path, text.replace("mqtt://", "MQTT://"))  # schemes ignore case
    assert problems_of(upper)[0].startswith(f"{upper}:6: mqtt.url: plain mqtt:// sends")
    config = load_config(write(tmp_path, text + "allow_insecure = true\n"))
    assert (config.mqtt.tls, config.mqtt.host, config.mqtt.port) == (False, "localhost", 1883)


def test_mqtt_url_forms(tmp_path: Path, state_dir: Path) -> None:
    for url, host, port in (("mqtts://[::1]:18883", "::1", 18883), ("mqtts://b/", "b", 8883)):
        config = load_config(write(tmp_path, minimal(state_dir).replace("mqtts://b:8883", url)))
        assert (config.mqtt.host, config.mqtt.port) == (host, port)
    for url in ("mqtts://", "mqtts://b:99999", "mqtts://b/topic", "mqtts://b?x=1", "b:8883"):
        text = minimal(state_dir).replace("mqtts://b:8883", url)
        [problem] = problems_of(write(tmp_path, text))
        assert ": mqtt.url: " in problem


def test_secrets_are_never_echoed_in_errors(tmp_path: Path, state_dir: Path) -> None:
    text = minimal(state_dir).replace("mqtts://b:8883", "mqtts://me:pw-in-url-77@b")
    [problem] = problems_of(write(tmp_path, text))
    assert "credentials do not belong in the URL" in problem and "pw-in-url-77" not in problem
    text = minimal(state_dir) + 'username = "u"\npassword = 31337424242\n'
    [problem] = problems_of(write(tmp_path, text))
    assert "mqtt.password: expected a string" in problem and "31337424242" not in problem


def test_mqtt_pairs_and_client_id(tmp_path: Path, state_dir: Path) -> None:
    path = write(tmp_path, minimal(state_dir) + 'cert = "/c.pem"\npassword = "p"\n')
    assert problems_of(path) == [
        f"{path}:5: mqtt.key: mqtt.cert and mqtt.key go together",
        f"{path}:8: mqtt.password: set mqtt.username as well",
    ]
    config = load_config(write(tmp_path, minimal(state_dir) + 'client_id = "cam-01-b"\nca=""\n'))
    assert config.mqtt.client_id == "cam-01-b" and config.mqtt.ca is None


def test_camera_sources_and_paths(tmp_path: Path, state_dir: Path) -> None:
    base = minimal(state_dir) + "\n[camera]\n"
    assert load_config(write(tmp_path, base + 'source = "v4l2"\n')).camera.path == "/dev/video0"
    path = write(tmp_path, base + 'source = "file"\n')
    assert problems_of(path) == [
        f'{path}:8: camera.path: required with source = "file": a .h264/.mp4/.mkv/.ts file to loop'
    ]
    config = load_config(write(tmp_path, base + 'source = "testsrc"\nframerate = 29.97\n'))
    assert config.camera.framerate == 29.97


# ---------------------------------------------------------------- ICE URLs


@pytest.mark.parametrize(
    ("url", "parsed"),
    [
        ("stun:stun.example", IceUrl("stun", "stun.example", 3478, "udp")),
        ("stun:Stun.Example:19302", IceUrl("stun", "stun.example", 19302, "udp")),
        ("stuns:stun.example", IceUrl("stuns", "stun.example", 5349, "tcp")),
        ("turn:10.0.0.1?transport=tcp", IceUrl("turn", "10.0.0.1", 3478, "tcp")),
        ("turn:t.example:3479?transport=udp", IceUrl("turn", "t.example", 3479, "udp")),
        ("turns:t.example", IceUrl("turns", "t.example", 5349, "tcp")),
        ("stun:[::1]", IceUrl("stun", "::1", 3478, "udp")),
        ("turn:[2001:DB8::1]:5000?transport=tcp", IceUrl("turn", "2001:db8::1", 5000, "tcp")),
        ("TURN:t", IceUrl("turn", "t", 3478, "udp")),
    ],
)
def test_ice_url_parsing(url: str, parsed: IceUrl) -> None:
    assert parse_ice_url(url) == parsed
    assert parse_ice_url(str(parsed)) == parsed


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("stun://h", "no '//'"),
        ("http:h", "scheme must be"),
        ("h:3478", "scheme must be"),
        ("stun:", "not a host name"),
        ("stun:h:0", "port must be 1..65535"),
        ("stun:h:65536", "port must be 1..65535"),
        ("stun:h:", "port must be 1..65535"),
        ("stun:h:12ab", "port must be 1..65535"),
        ("stun:::1", "in brackets"),
        ("stun:[::1", "malformed"),
        ("stun:[::1]x", "malformed"),
        ("stun:[host]", "not an IPv6 address"),
        ("stun:h_x", "not a host name"),
        ("stun:h?transport=udp", "stun URLs take no query"),
        ("turn:h?transport=sctp", "?transport=udp or ?transport=tcp"),
        ("turn:h?foo=udp", "?transport=udp or ?transport=tcp"),
        ("turns:h?transport=udp", "not supported"),
    ],
)
def test_bad_ice_urls(url: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        parse_ice_url(url)


@given(st.text(max_size=40) | st.from_regex(r"(stuns?|turns?):[\[\]:.a-z0-9?=_-]{0,20}"))
def test_ice_url_parser_raises_only_value_error(url: str) -> None:
    try:
        parsed = parse_ice_url(url)
    except ValueError:
        return
    assert parse_ice_url(str(parsed)) == parsed


def test_ice_servers_in_config(tmp_path: Path, state_dir: Path) -> None:
    text = minimal(state_dir) + (
        '\n[webrtc]\nice_addresses = ["127.0.0.1", "::1"]\n'
        'ice_servers = [{ urls = "stun:[::1]:3478" }, '
        '{ urls = ["turns:t:443?transport=tcp"], username = "u", credential = "c" }]\n'
    )
    config = load_config(write(tmp_path, text))
    assert config.webrtc.ice_addresses == ("127.0.0.1", "::1")
    assert config.webrtc.ice_servers[0].urls == ("stun:[::1]:3478",)
    assert config.webrtc.ice_servers[1].parsed == (IceUrl("turns", "t", 443, "tcp"),)
    path = write(tmp_path, minimal(state_dir) + '\n[webrtc]\nice_servers = [{ urls = "TURN:t" }]')
    assert problems_of(path) == [
        f"{path}:9: webrtc.ice_servers[0].username: required for a turn:/turns: URL",
        f"{path}:9: webrtc.ice_servers[0].credential: required for a turn:/turns: URL",
    ]


# ---------------------------------------------------------------- roles


def test_roles_glob_matching_and_precedence() -> None:
    access = AccessConfig(viewer=("*",), operator=("ops-*", "tech-?"), admin=("ops-root",))
    assert access.role_for("ops-root") is Role.ADMIN  # matches all three: the highest wins
    assert access.role_for("ops-1") is Role.OPERATOR
    assert access.role_for("tech-a") is Role.OPERATOR
    assert access.role_for("tech-ab") is Role.VIEWER
    assert access.role_for("OPS-1") is Role.VIEWER  # case-sensitive
    assert Role.VIEWER < Role.OPERATOR < Role.ADMIN
    strict = AccessConfig(viewer=("viewer-[0-9]",))
    assert strict.role_for("viewer-7") is Role.VIEWER
    assert strict.role_for("viewer-x") is None
    assert strict.role_for("") is None
    assert AccessConfig().role_for("anyone") is None


def test_access_patterns_from_file(tmp_path: Path, state_dir: Path) -> None:
    text = minimal(state_dir) + '\n[access]\nviewer = ["v-*"]\nadmin = ["root"]\n'
    access = load_config(write(tmp_path, text)).access
    assert (access.role_for("v-1"), access.role_for("root"), access.role_for("x")) == (
        Role.VIEWER,
        Role.ADMIN,
        None,
    )
    path = write(tmp_path, minimal(state_dir) + '\n[access]\nviewer = [""]\n')
    assert problems_of(path) == [f"{path}:9: access.viewer[0]: must not be empty"]


# ---------------------------------------------------------------- redaction

SECRETS = ("hunter2-mqtt-password", "turn-credential-42")


def secret_config(tmp_path: Path, state_dir: Path) -> Config:
    key = tmp_path / "device.key"
    key.write_text("-----BEGIN PRIVATE KEY-----\nKEY-CONTENTS-NEVER-SHOWN\n")
    text = minimal(state_dir) + (
        f'key = "{key}"\ncert = "{tmp_path}/device.pem"\n'
        f'username = "cam"\npassword = "{SECRETS[0]}"\n\n[webrtc]\n'
        f'ice_servers = [{{ urls = ["turn:t"], username = "u", credential = "{SECRETS[1]}" }},'
        ' { urls = "stun:s" }]\n'
    )
    return load_config(write(tmp_path, text))


def test_redaction_never_leaks_secrets(tmp_path: Path, state_dir: Path) -> None:
    config = secret_config(tmp_path, state_dir)
    shown = redacted(config)
    text = json.dumps(shown)
    for secret in (*SECRETS, "KEY-CONTENTS-NEVER-SHOWN"):
        assert secret not in text
    assert shown["mqtt"]["password"] == "***"
    assert shown["mqtt"]["key"] == f"{tmp_path}/device.key"
    assert shown["webrtc"]["ice_servers"][0]["credential"] == "***"
    assert "credential" not in shown["webrtc"]["ice_servers"][1]
    assert config.mqtt.password == SECRETS[0]  # redaction copies; the config keeps its secrets
    assert to_dict(config)["mqtt"]["password"] == SECRETS[0]


def test_redacted_placeholder_is_not_accepted_back(tmp_path: Path, state_dir: Path) -> None:
    config = secret_config(tmp_path, state_dir)
    with pytest.raises(ConfigError) as info:
        apply_patch(config, {"mqtt": redacted(config)["mqtt"]})
    assert info.value.problems == [
        'mqtt.password: "***" is the redaction placeholder; give the real value'
    ]
    assert apply_patch(config, {"camera": {"bitrate": 900_000}}).mqtt.password == SECRETS[0]


# ---------------------------------------------------------------- runtime patches


def test_apply_patch_validates_like_the_file(tmp_path: Path, state_dir: Path) -> None:
    config = load_config(write(tmp_path, minimal(state_dir)))
    new = apply_patch(config, {"camera": {"bitrate": 1_000_000, "framerate": 15}})
    assert (new.camera.bitrate, new.camera.framerate, new.camera.width) == (1_000_000, 15.0, 1280)
    assert config.camera.bitrate == 2_000_000
    with pytest.raises(ConfigError) as info:
        apply_patch(
            config,
            {
                "camera": {"framerate": "thirty", "widht": 640},
                "webrtc": {"max_viewers": 0},
                "device": {"state_dir": "/elsewhere"},
            },
        )
    assert info.value.problems == [
        "device.state_dir: cannot be changed at runtime: the override file lives in it",
        'camera.framerate: expected a number, got "thirty"',
        'camera.widht: unknown key; did you mean "width"?',
        "webrtc.max_viewers: must be 1..64, got 0",
    ]
    for bad in ([1], None, "x"):
        with pytest.raises(ConfigError):
            apply_patch(config, bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^camera: expected a table, got 5$"):
        apply_patch(config, {"camera": 5})


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
KNOWN_KEYS = [
    "device", "id", "state_dir", "mqtt", "url", "password", "camera", "source", "path",
    "width", "height", "framerate", "bitrate", "webrtc", "ice_servers", "urls", "credential",
    "offer_rate_limit", "count", "period", "ice_addresses", "access", "viewer", "telemetry",
    "interval", "logging", "level", "max_viewers", "dtls_role", "keepalive", "client_id",
]  # fmt: skip
PATCHES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12) | JSONISH,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(KNOWN_KEYS) | st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
EXAMPLE_CONFIG = load_config(EXAMPLE, state_dir_overrides=False)


@settings(max_examples=150, deadline=None)
@given(patch=st.dictionaries(st.sampled_from(KNOWN_KEYS) | st.integers(), PATCHES, max_size=4))
def test_random_patches_raise_only_config_error(patch: dict[Any, Any]) -> None:
    config = EXAMPLE_CONFIG
    try:
        new = apply_patch(config, patch)
    except ConfigError as e:
        assert e.problems and all(isinstance(p, str) for p in e.problems)
        return
    assert isinstance(new, Config)
    json.dumps(redacted(new))


# ---------------------------------------------------------------- random files

TOKENS = st.sampled_from(
    ["[", "]", "[[", "]]", "{", "}", "=", ",", ".", '"', "'", '"""', "#", "\n", " ",
     "device", "mqtt", "camera", "webrtc", "id", "url", "width", "ice_servers", "urls",
     "1", "-1", "1.5", "nan", "inf", "true", "1979-05-27", '"mqtts://b"', '"turn:x"', "x"]
)  # fmt: skip


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    text=st.lists(TOKENS, max_size=40).map("".join) | st.text(max_size=60),
    config=st.dictionaries(st.sampled_from(KNOWN_KEYS), PATCHES, max_size=4),
)
def test_random_files_raise_only_config_error(
    tmp_path: Path, text: str, config: dict[str, Any]
) -> None:
    try:
        structured = tomli_w.dumps(config)
    except (TypeError, ValueError):  # None has no TOML form; keep the text case going
        structured = ""
    for content in (text, structured, structured + text):
        path = tmp_path / "random.toml"
        path.write_text(content, errors="surrogatepass")
        try:
            load_config(path)
        except ConfigError as e:
            assert e.problems and all(p.startswith(str(path)) for p in e.problems), e.problems


# ---------------------------------------------------------------- overrides in state_dir


def test_saved_overrides_are_merged_at_load(tmp_path: Path, state_dir: Path) -> None:
    main = write(tmp_path, minimal(state_dir) + "\n[camera]\nwidth = 640\nheight = 480\n")
    config = load_config(main)
    patch = {"camera": {"bitrate": 800_000}, "mqtt": {"username": "u", "password": "s3cret"}}
    apply_patch(config, patch)
    target = save_overrides(state_dir, patch)
    assert target == state_dir / OVERRIDE_FILE
    assert stat.S_IMODE(target.stat().st_mode) == 0o600  # it may hold a password
    save_overrides(state_dir, {"camera": {"framerate": 15}})  # merged with the first patch
    config = load_config(main)
    assert (config.camera.width, config.camera.bitrate, config.camera.framerate) == (
        640,
        800_000,
        15.0,
    )
    assert config.mqtt.password == "s3cret"
    assert load_config(main, state_dir_overrides=False).camera.bitrate == 2_000_000


def test_problems_in_overrides_name_the_override_file(tmp_path: Path, state_dir: Path) -> None:
    main = write(tmp_path, minimal(state_dir) + "\n[camera]\nwidth = 641\n")
    state_dir.mkdir()
    override = state_dir / OVERRIDE_FILE
    override.write_text(
        '[camera]\nbitrate = "fast"\n\n[device]\nstate_dir = "/x"\n\n'
        '[webrtc]\nice_servers = [{ urls = "stun:a" },\n  { urls = "nope" }]\n'
    )
    assert problems_of(main) == [
        f"{main}:9: camera.width: must be even (H.264 4:2:0 halves it), got 641",
        f'{override}:2: camera.bitrate: expected an integer, got "fast"',
        f"{override}:5: device.state_dir: cannot be changed at runtime: the override file "
        "lives in it",
        f'{override}:9: webrtc.ice_servers[1].urls[0]: "nope": scheme must be stun:, stuns:, '
        "turn: or turns:",
    ]
    override.write_text("[camera\n")
    assert problems_of(main) == [f"{override}:1: syntax error: Expected ']' at the end of a table "
                                 "declaration (column 8)"]  # fmt: skip


def test_atomic_write_survives_a_crash_mid_write(
    tmp_path: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = save_overrides(state_dir, {"camera": {"bitrate": 700_000}})
    before = target.read_bytes()
    synced: list[int] = []
    real_fsync = os.fsync

    def crash(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    def fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "replace", crash)
    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError, match="No space left"):
        save_overrides(state_dir, {"camera": {"bitrate": 900_000}})
    assert target.read_bytes() == before
    assert sorted(p.name for p in state_dir.iterdir()) == [OVERRIDE_FILE]  # no temp file left
    assert synced, "the data must reach the disk before the rename"
    monkeypatch.undo()
    synced.clear()
    monkeypatch.setattr(os, "fsync", fsync)
    save_overrides(state_dir, {"camera": {"bitrate": 900_000}})
    assert len(synced) == 2  # the file, then the directory holding the new name
    assert load_config(write(tmp_path, minimal(state_dir))).camera.bitrate == 900_000


def test_save_overrides_refuses_what_toml_cannot_hold(state_dir: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be written as TOML"):
        save_overrides(state_dir, {"camera": {"path": None}})
    with pytest.raises(ConfigError, match=r"device\.state_dir: cannot be changed"):
        save_overrides(state_dir, {"device": {"state_dir": "/x"}})
    assert not (state_dir / OVERRIDE_FILE).exists()
