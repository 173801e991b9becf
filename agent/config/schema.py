"""The agent's configuration schema: one frozen dataclass per TOML table, enums for every
key with a fixed set of values. Reading and checking are in ``load``; writing in ``store``.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any, Final
from urllib.parse import urlsplit

from agent.config.ice_url import IceUrl, parse_ice_url
from agent.config.reader import KeyPath, Problem
from agent.rpc.roles import Role
from hw.controls import ControlValue
from hw.kinds import SourceKind
from hw.source import H264Profile

# ``camera.source``: where frames come from (hw's one list of source kinds).
CameraSource = SourceKind

OVERRIDE_FILE: Final = "config.override.toml"
REDACTED: Final = "***"
INSECURE_URL: Final = (
    "plain mqtt:// sends credentials and video offers unencrypted; "
    "use mqtts:// or set mqtt.allow_insecure = true"
)


class DtlsRole(StrEnum):
    """``webrtc.dtls_role``: the DTLS role the device takes when an offer lets it choose.

    AUTO answers whatever the offer allows (active to actpass, as RFC 8842 recommends).
    """

    AUTO = "auto"
    ACTIVE = "active"
    PASSIVE = "passive"


class LogLevel(StrEnum):
    """``logging.level``."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


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

    source: CameraSource = CameraSource.PICAMERA2
    path: str = ""
    width: int = 1280
    height: int = 720
    framerate: float = 30.0
    bitrate: int = 2_000_000
    # The bitrate policy's floor: the encoder follows the weakest viewer's bandwidth estimate
    # down to here; a viewer whose estimate is lower gets keyframes and what fits (unless
    # every viewer is below it: then the encoder follows the strongest).
    min_bitrate: int = 300_000
    index: int = 0  # picamera2: which camera on a board with two
    profile: H264Profile = H264Profile.CONSTRAINED_BASELINE  # browsers offer no High
    iperiod: int = 0  # frames between IDRs; 0: two seconds' worth
    # ``[camera.controls]``: brightness, exposure, ... set by camera.set, applied at start.
    controls: tuple[tuple[str, ControlValue], ...] = ()
    # On demand: stop the camera after idle_timeout seconds with no viewer, start it again at
    # the next offer (the answer waits for its first keyframe). Off: warm, instant start.
    on_demand: bool = False
    idle_timeout: float = 30.0


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
    max_sessions_per_client: int = 2  # so one client cannot hold every viewer slot
    ice_addresses: tuple[str, ...] = ()
    ice_servers: tuple[IceServer, ...] = ()
    dtls_role: DtlsRole = DtlsRole.ACTIVE
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
class HomeAssistantConfig:
    """``[homeassistant]``: MQTT discovery for Home Assistant (off unless enabled).

    `client_id` is the MQTT client id Home Assistant connects with: its button and number
    publish JSON-RPC notifications on ``P/D/rpc/<client_id>``, so `[access]` must give it
    the operator role for the bitrate. `snapshot_interval` 0 publishes pictures only when
    the entity's "Snapshot" button asks.
    """

    enabled: bool = False
    discovery_prefix: str = "homeassistant"
    client_id: str = "homeassistant"
    snapshot_interval: float = 0.0
    snapshot_quality: int = 80


@dataclass(frozen=True)
class LoggingConfig:
    """``[logging]``: the root log level."""

    level: LogLevel = LogLevel.INFO

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
    homeassistant: HomeAssistantConfig = field(default_factory=HomeAssistantConfig)


def _to_raw(obj: object) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            f.name: _to_raw(getattr(obj, f.name))
            for f in dataclasses.fields(obj)
            if getattr(obj, f.name) is not None
        }
    if isinstance(obj, tuple):
        return [_to_raw(x) for x in obj]
    if isinstance(obj, Enum):
        return obj.value
    return obj


def to_dict(config: Config) -> dict[str, Any]:
    """The effective config as plain TOML/JSON data, secrets included: never send this out."""
    raw: dict[str, Any] = _to_raw(config)
    raw["camera"]["controls"] = dict(config.camera.controls)  # a table, not pairs
    return raw


def screen_patch(
    data: Mapping[Any, Any], problems: list[Problem], path: KeyPath = ()
) -> dict[Any, Any]:
    """``data`` without what may never be changed after start; each such key is recorded in
    ``problems`` with the reason."""
    out = {}
    for key, value in data.items():
        here = (*path, key)
        if not isinstance(key, str):
            problems.append((here, "keys must be strings"))
        elif here == ("device", "state_dir"):
            problems.append((here, "cannot be changed at runtime: the override file lives in it"))
        elif isinstance(value, Mapping):
            out[key] = screen_patch(value, problems, here)
        else:
            out[key] = value
    return out
