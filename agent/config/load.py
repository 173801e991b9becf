"""Reading the configuration: one TOML file plus the overrides made over the API.

``load_config`` reads the file (and ``state_dir/config.override.toml``, written by
``store.save_overrides`` when ``config.set`` changes something), checks every key and reports
every problem at once, each naming the file, the line where it can be found and the dotted
key. Files the configuration names are not opened here: ``agent.config.check`` does that.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from agent.config.ice_url import parse_ice_url
from agent.config.reader import (
    MISSING,
    Bad,
    ConfigError,
    Problem,
    Table,
    TomlSource,
    boolean,
    choice,
    format_problems,
    integer,
    merge,
    nonempty,
    number,
    show,
    string,
    strings,
)
from agent.config.schema import (
    INSECURE_URL,
    OVERRIDE_FILE,
    REDACTED,
    AccessConfig,
    CameraConfig,
    CameraSource,
    Config,
    DeviceConfig,
    DtlsRole,
    HomeAssistantConfig,
    IceServer,
    LoggingConfig,
    LogLevel,
    MqttConfig,
    RateLimit,
    TelemetryConfig,
    WebrtcConfig,
    screen_patch,
    to_dict,
)
from hw.controls import CONTROL_NAMES, ControlValue
from hw.source import H264Profile

logger = logging.getLogger(__name__)

_NO_STRINGS: tuple[str, ...] = ()


def _secret(v: object) -> str:
    # Never echo the value: it may be the secret with a typo in its quoting.
    if not isinstance(v, str):
        raise Bad(f"expected a string, got a value of another type ({type(v).__name__})")
    if v == REDACTED:
        raise Bad(f'"{REDACTED}" is the redaction placeholder; give the real value')
    return v


def _optional_path(v: object) -> str | None:
    return string(v) or None  # "" reads as "not set", as a commented-out key would


def _device_id(v: object) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", string(v)):
        raise Bad(f'must be 1 to 64 characters from A-Z a-z 0-9 and "_-.", got {show(v)}')
    return str(v)


def _topic_prefix(v: object) -> str:
    s = nonempty(v)
    if "+" in s or "#" in s or "\0" in s:
        raise Bad(f"must not contain the MQTT wildcards + and #, got {show(s)}")
    if s.startswith("/") or s.endswith("/") or "//" in s or s.startswith("$"):
        raise Bad(f"no leading or trailing '/', no empty level, no leading '$': {show(s)}")
    return s


def _client_id(v: object) -> str:
    s = nonempty(v)
    if len(s) > 128 or any(c in s for c in "+#/\0"):
        raise Bad(f"must be 1 to 128 characters without + # /, got {show(s)}")
    return s


def _mqtt_url(v: object) -> str:
    s = string(v)
    try:
        parts = urlsplit(s)
        parts.port  # noqa: B018 - urlsplit checks the port only when asked for it
    except ValueError as e:
        raise Bad(f"not a URL: {e}") from None
    if parts.username is not None or parts.password is not None:
        raise Bad("credentials do not belong in the URL; set mqtt.username and mqtt.password")
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise Bad(f"expected mqtts://host[:port], got {show(s)}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise Bad(f"expected only a host and a port, got {show(s)}")
    return s


def _ip_address(v: object) -> str:
    try:
        return str(ipaddress.ip_address(string(v)))
    except ValueError:
        raise Bad(f"expected an IP address, got {show(v)}") from None


def _pattern(v: object) -> str:
    s = nonempty(v)
    if len(s) > 256:
        raise Bad("longer than 256 characters")
    return s


def _ice_urls(v: object) -> tuple[str, ...]:
    urls = strings(string)([v] if isinstance(v, str) else v)
    if not urls:
        raise Bad("needs at least one URL")
    for i, url in enumerate(urls):
        try:
            parsed = parse_ice_url(url)
        except ValueError as e:
            raise Bad(str(e), (i,)) from None
        if parsed.scheme == "stuns":
            # aioice speaks STUN over UDP only; refusing here beats failing at start.
            raise Bad("stuns: (STUN over TLS) is not supported; use stun:", (i,))
    return urls


def _read_device(t: Table) -> DeviceConfig:
    config = DeviceConfig(
        id=t.value("id", "", _device_id, required=True),
        state_dir=t.value("state_dir", DeviceConfig.state_dir, nonempty),
    )
    t.done()
    return config


def _read_mqtt(t: Table, device_id: str) -> MqttConfig:
    url = t.value("url", "mqtts://invalid", _mqtt_url, required=True)
    allow_insecure = t.value("allow_insecure", False, boolean)
    if urlsplit(url).scheme == "mqtt" and not allow_insecure:
        t.problem("url", INSECURE_URL)
    cert = t.value("cert", None, _optional_path)
    key = t.value("key", None, _optional_path)
    if (cert is None) != (key is None):
        t.problem("cert" if cert is None else "key", "mqtt.cert and mqtt.key go together")
    username = t.value("username", None, nonempty)
    password = t.value("password", None, _secret)
    if password is not None and username is None:
        t.problem("password", "set mqtt.username as well")
    config = MqttConfig(
        url=url,
        ca=t.value("ca", None, _optional_path),
        cert=cert,
        key=key,
        topic_prefix=t.value("topic_prefix", MqttConfig.topic_prefix, _topic_prefix),
        allow_insecure=allow_insecure,
        keepalive=t.value("keepalive", MqttConfig.keepalive, integer(5, 3600)),
        client_id=t.value("client_id", device_id, _client_id),
        username=username,
        password=password,
    )
    t.done()
    return config


def _read_camera(t: Table) -> CameraConfig:
    source = t.value("source", CameraConfig.source, choice(CameraSource))
    path = t.value("path", "", string)
    if source == "file" and not path:
        t.problem("path", 'required with source = "file": a .h264/.mp4/.mkv/.ts file to loop')
    if source == "v4l2" and not path:
        path = "/dev/video0"
    config = CameraConfig(
        source=source,
        path=path,
        width=t.value("width", CameraConfig.width, integer(2, 7680, even=True)),
        height=t.value("height", CameraConfig.height, integer(2, 4320, even=True)),
        framerate=t.value("framerate", CameraConfig.framerate, number(1, 120)),
        bitrate=t.value("bitrate", CameraConfig.bitrate, integer(50_000, 50_000_000)),
        min_bitrate=t.value("min_bitrate", CameraConfig.min_bitrate, integer(50_000, 50_000_000)),
        index=t.value("index", CameraConfig.index, integer(0, 7)),
        profile=t.value("profile", CameraConfig.profile, choice(H264Profile)),
        iperiod=t.value("iperiod", CameraConfig.iperiod, integer(0, 3600)),
        controls=_read_controls(t.table("controls")),
        on_demand=t.value("on_demand", CameraConfig.on_demand, boolean),
        idle_timeout=t.value("idle_timeout", CameraConfig.idle_timeout, number(1, 86400)),
    )
    t.done()
    return config


def _control_value(v: object) -> ControlValue:
    if isinstance(v, bool | int | float | str):
        return v
    raise Bad(f"expected true/false, a number or a string, got {show(v)}")


def _read_controls(t: Table) -> tuple[tuple[str, ControlValue], ...]:
    """``[camera.controls]``: names from hw's vocabulary; whether this camera has each one
    (and its range) is checked when the camera opens."""
    default: ControlValue = False  # never used: only keys present are read
    out = [(n, t.value(n, default, _control_value)) for n in CONTROL_NAMES if n in t.raw]
    t.done()
    return tuple(out)


def _read_ice_server(t: Table) -> IceServer:
    urls = t.value("urls", _NO_STRINGS, _ice_urls, required=True)
    username = t.value("username", None, string)
    credential = t.value("credential", None, _secret)
    if any(parse_ice_url(u).is_turn for u in urls):  # urls are valid, or empty
        for key, value in (("username", username), ("credential", credential)):
            if value is None:
                t.problem(key, "required for a turn:/turns: URL")
    t.done()
    return IceServer(urls, username, credential)


def _read_webrtc(t: Table) -> WebrtcConfig:
    servers: list[IceServer] = []
    raw_servers = t.get("ice_servers")
    if isinstance(raw_servers, list | tuple):
        for i, raw in enumerate(raw_servers):
            servers.append(_read_ice_server(Table(raw, (*t.path, "ice_servers", i), t.problems)))
    elif raw_servers is not MISSING:
        t.problem("ice_servers", f"expected an array of tables, got {show(raw_servers)}")
    limit = t.table("offer_rate_limit")
    default_limit = WebrtcConfig.offer_rate_limit
    rate_limit = RateLimit(
        count=limit.value("count", default_limit.count, integer(1, 1000)),
        period=limit.value("period", default_limit.period, number(0.1, 3600)),
    )
    limit.done()
    config = WebrtcConfig(
        max_viewers=t.value("max_viewers", WebrtcConfig.max_viewers, integer(1, 64)),
        max_sessions_per_client=t.value(
            "max_sessions_per_client", WebrtcConfig.max_sessions_per_client, integer(1, 64)
        ),
        ice_addresses=t.value("ice_addresses", _NO_STRINGS, strings(_ip_address)),
        ice_servers=tuple(servers),
        dtls_role=t.value("dtls_role", WebrtcConfig.dtls_role, choice(DtlsRole)),
        offer_rate_limit=rate_limit,
    )
    t.done()
    return config


_ROLE_KEYS: Final = ("viewer", "operator", "admin")


def _read_access(t: Table) -> AccessConfig:
    config = AccessConfig(*(t.value(role, _NO_STRINGS, strings(_pattern)) for role in _ROLE_KEYS))
    t.done()
    return config


def _read_homeassistant(t: Table) -> HomeAssistantConfig:
    d = HomeAssistantConfig
    config = HomeAssistantConfig(
        enabled=t.value("enabled", d.enabled, boolean),
        discovery_prefix=t.value("discovery_prefix", d.discovery_prefix, _topic_prefix),
        client_id=t.value("client_id", d.client_id, _client_id),
        snapshot_interval=t.value("snapshot_interval", d.snapshot_interval, number(0, 86400)),
        snapshot_quality=t.value("snapshot_quality", d.snapshot_quality, integer(1, 100)),
    )
    t.done()
    return config


def _build(raw: Mapping[str, Any]) -> tuple[Config, list[Problem]]:
    problems: list[Problem] = []
    top = Table(raw, (), problems)
    device = _read_device(top.table("device"))
    telemetry, log = top.table("telemetry"), top.table("logging")
    config = Config(
        device=device,
        mqtt=_read_mqtt(top.table("mqtt"), device.id or "edgecam"),
        camera=_read_camera(top.table("camera")),
        webrtc=_read_webrtc(top.table("webrtc")),
        access=_read_access(top.table("access")),
        telemetry=TelemetryConfig(
            telemetry.value("interval", TelemetryConfig.interval, number(1, 86400))
        ),
        logging=LoggingConfig(log.value("level", LoggingConfig.level, choice(LogLevel))),
        homeassistant=_read_homeassistant(top.table("homeassistant")),
    )
    telemetry.done()
    log.done()
    top.done()
    return config, problems


@dataclass(frozen=True)
class LoadedConfig:
    """A config as read, problems and all: ``config`` holds the default wherever a value
    had a problem; ``sources`` locate each problem's key by file and line."""

    config: Config
    problems: list[Problem]
    sources: list[TomlSource]


def read_config(path: str | os.PathLike[str], state_dir_overrides: bool = True) -> LoadedConfig:
    """Read the config file (merged with ``state_dir/config.override.toml`` if
    ``state_dir_overrides`` and that file exists) and every problem of it. Raises
    ConfigError only for a file that cannot be read or is not TOML."""
    sources = [TomlSource.read(Path(path))]
    merged = sources[0].data
    problems: list[Problem] = []
    device = merged.get("device")
    state_dir = device.get("state_dir") if isinstance(device, dict) else None
    state_dir = state_dir if isinstance(state_dir, str) and state_dir else DeviceConfig.state_dir
    if state_dir_overrides:
        override = TomlSource.read(Path(state_dir) / OVERRIDE_FILE, missing_ok=True)
        if override.data:
            sources.append(override)
            merged = merge(merged, screen_patch(override.data, problems))
    config, more = _build(merged)
    return LoadedConfig(config, problems + more, sources)


def load_config(path: str | os.PathLike[str], state_dir_overrides: bool = True) -> Config:
    """Read and validate the config file, merged with ``state_dir/config.override.toml`` if
    ``state_dir_overrides`` and that file exists. Raises ConfigError listing every problem.
    The files the config names (certificates, camera) are not opened: see config_check."""
    loaded = read_config(path, state_dir_overrides)
    if loaded.problems:
        raise ConfigError(format_problems(loaded.problems, loaded.sources))
    logger.debug("config loaded from %s", " + ".join(s.name for s in loaded.sources))
    return loaded.config


def apply_patch(config: Config, patch: Mapping[str, Any]) -> Config:
    """``config`` with ``patch`` (a partial config, as in ``config.set``) merged over it and
    validated as a file would be. Raises ConfigError whose problems name each dotted key."""
    if not isinstance(patch, Mapping):
        raise ConfigError([f"(top level): expected a table, got {show(patch)}"])
    problems: list[Problem] = []
    merged = merge(to_dict(config), screen_patch(patch, problems))
    new, more = _build(merged)
    problems += more
    if problems:
        raise ConfigError(format_problems(problems, []))
    return new
