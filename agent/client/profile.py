"""Where a fleet client's connection settings come from: flags, `EDGECAM_*` variables, and
profiles in `~/.config/edgecam/client.toml`, in that order of precedence.

A profile is a table of that file with the agent's `[mqtt]` keys, for example::

    [lab]
    url = "mqtts://broker.lab:8883"
    ca = "/etc/edgecam/ca.pem"
    cert = "~/.config/edgecam/ops-alice.pem"
    key = "~/.config/edgecam/ops-alice.key"
    topic_prefix = "edgecam"

A table named `default` is used when no profile is named.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agent.client.connection import FleetSettings
from agent.client.errors import ConnectError

DEFAULT_FILE = "~/.config/edgecam/client.toml"
# Setting name -> (profile key, environment variable).
KEYS: dict[str, tuple[str, str]] = {
    "broker": ("url", "EDGECAM_BROKER"),
    "ca": ("ca", "EDGECAM_CA"),
    "cert": ("cert", "EDGECAM_CERT"),
    "key": ("key", "EDGECAM_KEY"),
    "prefix": ("topic_prefix", "EDGECAM_PREFIX"),
    "client_id": ("client_id", "EDGECAM_CLIENT_ID"),
    "allow_insecure": ("allow_insecure", "EDGECAM_ALLOW_INSECURE"),
    "username": ("username", "EDGECAM_USERNAME"),
    "password": ("password", "EDGECAM_PASSWORD"),
    "keepalive": ("keepalive", "EDGECAM_KEEPALIVE"),
}
_PATHS = ("ca", "cert", "key")
_TRUE = ("1", "true", "yes", "on")


def profile_file(env: Mapping[str, str]) -> Path:
    return Path(env.get("EDGECAM_CLIENT_CONFIG", DEFAULT_FILE)).expanduser()


def read_profile(name: str | None, env: Mapping[str, str]) -> dict[str, Any]:
    """The profile's settings (by setting name); {} when none is named and there is no file."""
    path = profile_file(env)
    wanted = name or env.get("EDGECAM_PROFILE")
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        if wanted:
            raise ConnectError(f"profile {wanted!r}: {path} does not exist") from None
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConnectError(f"{path}: {exc}") from None
    table = data.get(wanted or "default")
    if table is None:
        if wanted:
            raise ConnectError(f"{path}: no profile [{wanted}]")
        return {}
    if not isinstance(table, dict):
        raise ConnectError(f"{path}: [{wanted}] is not a table")
    by_key = {key: setting for setting, (key, _env) in KEYS.items()}
    unknown = sorted(set(table) - set(by_key))
    if unknown:
        raise ConnectError(f"{path}: [{wanted or 'default'}]: unknown key {unknown[0]!r}")
    return {by_key[k]: v for k, v in table.items()}


def _typed(setting: str, value: Any) -> Any:
    if setting == "allow_insecure":
        return value if isinstance(value, bool) else str(value).lower() in _TRUE
    if setting == "keepalive":
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConnectError(f"keepalive: not a number: {value!r}") from None
    if setting in _PATHS:
        return str(Path(str(value)).expanduser())
    return str(value)


def resolve_settings(
    flags: Mapping[str, Any], profile: str | None, env: Mapping[str, str] | None = None
) -> FleetSettings:
    """Flags (None: not given) over `EDGECAM_*` over the profile; ConnectError if no broker."""
    env = os.environ if env is None else env
    merged = read_profile(profile, env)
    for setting, (_key, variable) in KEYS.items():
        if env.get(variable):
            merged[setting] = env[variable]
        if flags.get(setting) not in (None, False):
            merged[setting] = flags[setting]
    if "broker" not in merged:
        raise ConnectError(
            f"no broker: give --broker URL, EDGECAM_BROKER, or a profile in {profile_file(env)}"
        )
    return FleetSettings(**{k: _typed(k, v) for k, v in merged.items()})
