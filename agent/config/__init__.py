"""The agent's configuration: schema (enums), load, check, store.

The names other packages use are re-exported here, so callers write
``from agent.config import Config, load_config``.
"""

from agent.config.ice_url import IceUrl, parse_ice_url
from agent.config.load import apply_patch, load_config
from agent.config.reader import ConfigError
from agent.config.schema import (
    OVERRIDE_FILE,
    REDACTED,
    AccessConfig,
    CameraConfig,
    CameraSource,
    Config,
    DeviceConfig,
    DtlsRole,
    IceServer,
    LoggingConfig,
    LogLevel,
    MqttConfig,
    RateLimit,
    TelemetryConfig,
    WebrtcConfig,
    to_dict,
)
from agent.config.store import redacted, save_overrides, write_atomically
from agent.rpc.roles import Role

__all__ = [
    "OVERRIDE_FILE",
    "REDACTED",
    "AccessConfig",
    "CameraConfig",
    "CameraSource",
    "Config",
    "ConfigError",
    "DeviceConfig",
    "DtlsRole",
    "IceServer",
    "IceUrl",
    "LogLevel",
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
    "write_atomically",
]
