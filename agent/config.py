"""The agent's configuration: one TOML file, typed and validated, plus runtime overrides.

``load_config`` reads the file (and ``state_dir/config.override.toml``, written by
``save_overrides`` when ``config.set`` changes something over the API), checks every key and
reports every problem at once, each naming the file, the line where it can be found and the
dotted key. Files the configuration names are not opened here: ``agent.config_check`` does that.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import ipaddress
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import tomli_w

from agent.config_reader import (
    MISSING,
    Bad,
    ConfigError,
    KeyPath,
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
    write_atomically,
)
from agent.signaling.rpc import Role  # one role type for config and dispatcher
from hw.source import StreamSettings

__all__ = [
    "AccessConfig",
    "CameraConfig",
    "Config",
    "ConfigError",
    "DeviceConfig",
    "IceServer",
    "IceUrl",
    "LoggingConfig",
    "MqttConfig",
    "RateLimit",
    "Role",
    "TelemetryConfig",
    "WebrtcConfig",
    "apply_patch",
    "load_config",
    "parse_ice_url",
    "redacted",
    "save_overrides",
    "to_dict",
]

logger = logging.getLogger(__name__)

OVERRIDE_FILE: Final = "config.override.toml"
REDACTED: Final = "***"
CAMERA_SOURCES: Final = ("picamera2", "v4l2", "file", "testsrc")
DTLS_ROLES: Final = ("auto", "active", "passive")
LOG_LEVELS: Final = ("debug", "info", "warning", "error", "critical")
INSECURE_URL: Final = (
    "plain mqtt:// sends credentials and video offers unencrypted; "
    "use mqtts:// or set mqtt.allow_insecure = true"
)
_NO_STRINGS: tuple[str, ...] = ()


@dataclass(frozen=True)
class IceUrl:
    """A parsed ``stun:``/``stuns:``/``turn:``/``turns:`` URL (RFC 7064, RFC 7065)."""

    scheme: str
    host: str  # IPv6 without brackets
    port: int
    transport: str  # "udp" or "tcp"

    @property
    def is_turn(self) -> bool:
        return self.scheme in ("turn", "turns")

    @property
    def secure(self) -> bool:
        return self.scheme.endswith("s")

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        query = f"?transport={self.transport}" if self.is_turn else ""
        return f"{self.scheme}:{host}:{self.port}{query}"


_ICE_DEFAULTS: Final = {
    "stun": (3478, "udp"),
    "stuns": (5349, "tcp"),
    "turn": (3478, "udp"),
    "turns": (5349, "tcp"),
}
_HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def parse_ice_url(url: str) -> IceUrl:
    """Parse an ICE server URL; raises ValueError naming what is wrong."""
    if not isinstance(url, str):
        raise ValueError(f"expected a string, got {show(url)}")
    scheme, colon, rest = url.partition(":")
    scheme = scheme.lower()
    if not colon or scheme not in _ICE_DEFAULTS:
        raise ValueError(f"{show(url)}: scheme must be stun:, stuns:, turn: or turns:")
    if rest.startswith("//"):
        raise ValueError(f"{show(url)}: ICE URLs have no '//' (write {scheme}:host:port)")
    hostport, question, query = rest.partition("?")
    port, transport = _ICE_DEFAULTS[scheme]
    if question:
        if scheme in ("stun", "stuns"):
            raise ValueError(f"{show(url)}: stun URLs take no query")
        name, _, value = query.partition("=")
        if name.lower() != "transport" or value.lower() not in ("udp", "tcp"):
            raise ValueError(f"{show(url)}: the only query is ?transport=udp or ?transport=tcp")
        transport = value.lower()
        if scheme == "turns" and transport == "udp":
            raise ValueError(f"{show(url)}: TURN over DTLS (turns: with udp) is not supported")
    if hostport.startswith("["):
        host, bracket, after = hostport[1:].partition("]")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{show(url)}: {show(host)} is not an IPv6 address") from None
        if not bracket or (after and not after.startswith(":")):
            raise ValueError(f"{show(url)}: malformed [IPv6]:port")
        port_text = after[1:] if after else None
    else:
        if hostport.count(":") > 1:
            raise ValueError(f"{show(url)}: write an IPv6 address in brackets, as [::1]")
        host, sep, port_text_ = hostport.partition(":")
        port_text = port_text_ if sep else None
        if len(host) > 253 or not all(_HOST_LABEL.fullmatch(p) for p in host.split(".")):
            raise ValueError(f"{show(url)}: {show(host)} is not a host name or address")
    if port_text is not None:
        if not port_text.isascii() or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"{show(url)}: port must be 1..65535")
        port = int(port_text)
    return IceUrl(scheme, host.lower(), port, transport)


@dataclass(frozen=True)
class DeviceConfig:
    """``[device]``: who this camera is and where it keeps its state."""

    id: str
    state_dir: str = "/var/lib/edgecam"


@dataclass(frozen=True)
class MqttConfig:
    """``[mqtt]``: the broker connection."""

    url: str
    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    topic_prefix: str = "edgecam"
    allow_insecure: bool = False
    keepalive: int = 60
    client_id: str = ""  # load_config fills in device.id
    username: str | None = None
    password: str | None = None

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme == "mqtts"

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or (8883 if self.tls else 1883)


@dataclass(frozen=True)
class CameraConfig:
    """``[camera]``: where frames come from and what the encoder is asked for."""

    source: str = "picamera2"
    path: str = ""
    width: int = 1280
    height: int = 720
    framerate: float = 30.0
    bitrate: int = 2_000_000

    def stream_settings(self) -> StreamSettings:
        return StreamSettings(self.width, self.height, self.framerate, self.bitrate)


@dataclass(frozen=True)
class IceServer:
    """One entry of ``webrtc.ice_servers``, as in the browser's RTCIceServer."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None

    @property
    def parsed(self) -> tuple[IceUrl, ...]:
        return tuple(parse_ice_url(u) for u in self.urls)


@dataclass(frozen=True)
class RateLimit:
    """At most ``count`` events per ``period`` seconds."""

    count: int
    period: float


@dataclass(frozen=True)
class WebrtcConfig:
    """``[webrtc]``: viewer limit, ICE and DTLS settings."""

    max_viewers: int = 8
    ice_addresses: tuple[str, ...] = ()
    ice_servers: tuple[IceServer, ...] = ()
    dtls_role: str = "active"
    offer_rate_limit: RateLimit = RateLimit(5, 10.0)  # per client


@dataclass(frozen=True)
class AccessConfig:
    """``[access]``: client-id glob patterns per role (PROTOCOL.md section 7)."""

    viewer: tuple[str, ...] = ()
    operator: tuple[str, ...] = ()
    admin: tuple[str, ...] = ()

    def role_for(self, client_id: str) -> Role | None:
        """The highest role with a pattern matching ``client_id``; None: no access at all."""
        for role, patterns in (
            (Role.ADMIN, self.admin),
            (Role.OPERATOR, self.operator),
            (Role.VIEWER, self.viewer),
        ):
            if any(fnmatch.fnmatchcase(client_id, p) for p in patterns):
                return role
        return None


@dataclass(frozen=True)
class TelemetryConfig:
    """``[telemetry]``: seconds between metrics messages."""

    interval: float = 10.0


@dataclass(frozen=True)
class LoggingConfig:
    """``[logging]``: the root log level."""

    level: str = "info"

    @property
    def level_number(self) -> int:
        return logging.getLevelNamesMapping()[self.level.upper()]


@dataclass(frozen=True)
class Config:
    """The whole effective configuration."""

    device: DeviceConfig
    mqtt: MqttConfig
    camera: CameraConfig = field(default_factory=CameraConfig)
    webrtc: WebrtcConfig = field(default_factory=WebrtcConfig)
    access: AccessConfig = field(default_factory=AccessConfig)
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)


# ---------------------------------------------------------------- values of this schema


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


# ---------------------------------------------------------------- the schema, one table each


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
    source = t.value("source", CameraConfig.source, choice(*CAMERA_SOURCES))
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
    )
    t.done()
    return config


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
        ice_addresses=t.value("ice_addresses", _NO_STRINGS, strings(_ip_address)),
        ice_servers=tuple(servers),
        dtls_role=t.value("dtls_role", WebrtcConfig.dtls_role, choice(*DTLS_ROLES)),
        offer_rate_limit=rate_limit,
    )
    t.done()
    return config


_ROLE_KEYS: Final = ("viewer", "operator", "admin")


def _read_access(t: Table) -> AccessConfig:
    config = AccessConfig(*(t.value(role, _NO_STRINGS, strings(_pattern)) for role in _ROLE_KEYS))
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
        logging=LoggingConfig(log.value("level", LoggingConfig.level, choice(*LOG_LEVELS))),
    )
    telemetry.done()
    log.done()
    top.done()
    return config, problems


# ---------------------------------------------------------------- files, lines and messages


# ---------------------------------------------------------------- loading, patches, overrides


def _screen(data: Mapping[Any, Any], problems: list[Problem], path: KeyPath = ()) -> dict[Any, Any]:
    """Drop from a patch what may never be changed after start, recording why."""
    out = {}
    for key, value in data.items():
        here = (*path, key)
        if not isinstance(key, str):
            problems.append((here, "keys must be strings"))
        elif here == ("device", "state_dir"):
            problems.append((here, "cannot be changed at runtime: the override file lives in it"))
        elif isinstance(value, Mapping):
            out[key] = _screen(value, problems, here)
        else:
            out[key] = value
    return out


def load_config(path: str | os.PathLike[str], state_dir_overrides: bool = True) -> Config:
    """Read and validate the config file, merged with ``state_dir/config.override.toml`` if
    ``state_dir_overrides`` and that file exists. Raises ConfigError listing every problem.
    The files the config names (certificates, camera) are not opened: see config_check."""
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
            merged = merge(merged, _screen(override.data, problems))
    config, more = _build(merged)
    problems += more
    if problems:
        raise ConfigError(format_problems(problems, sources))
    logger.debug("config loaded from %s", " + ".join(s.name for s in sources))
    return config


def _to_raw(obj: object) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            f.name: _to_raw(getattr(obj, f.name))
            for f in dataclasses.fields(obj)
            if getattr(obj, f.name) is not None
        }
    if isinstance(obj, tuple):
        return [_to_raw(x) for x in obj]
    return obj


def to_dict(config: Config) -> dict[str, Any]:
    """The effective config as plain TOML/JSON data, secrets included: never send this out."""
    raw: dict[str, Any] = _to_raw(config)
    return raw


def redacted(config: Config) -> dict[str, Any]:
    """The effective config as JSON-able data with every secret value replaced by "***"."""
    raw = to_dict(config)
    if "password" in raw["mqtt"]:
        raw["mqtt"]["password"] = REDACTED
    for server in raw["webrtc"]["ice_servers"]:
        if "credential" in server:
            server["credential"] = REDACTED
    return raw


def apply_patch(config: Config, patch: Mapping[str, Any]) -> Config:
    """``config`` with ``patch`` (a partial config, as in ``config.set``) merged over it and
    validated as a file would be. Raises ConfigError whose problems name each dotted key."""
    if not isinstance(patch, Mapping):
        raise ConfigError([f"(top level): expected a table, got {show(patch)}"])
    problems: list[Problem] = []
    merged = merge(to_dict(config), _screen(patch, problems))
    new, more = _build(merged)
    problems += more
    if problems:
        raise ConfigError(format_problems(problems, []))
    return new


def save_overrides(state_dir: str | os.PathLike[str], patch: Mapping[str, Any]) -> Path:
    """Merge ``patch`` into ``state_dir/config.override.toml``, written atomically: a crash at
    any moment leaves either the old file or the new one. Validate ``patch`` with
    ``apply_patch`` first; this only refuses what a TOML file cannot hold. Returns the path.
    OSError (disk full, read-only) propagates unchanged."""
    directory = Path(state_dir)
    target = directory / OVERRIDE_FILE
    current: dict[str, Any] = {}
    if target.exists():
        current = TomlSource.read(target).data
    problems: list[Problem] = []
    merged = merge(current, _screen(patch, problems))
    if problems:
        raise ConfigError(format_problems(problems, []))
    try:
        text = tomli_w.dumps(merged)
    except (TypeError, ValueError) as e:
        raise ConfigError([f"{target}: cannot be written as TOML: {e}"]) from None
    header = "# Written by edgecam (config.set); merged over the main config file at start.\n"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomically(target, (header + text).encode())
    logger.info("config overrides saved to %s", target)
    return target
