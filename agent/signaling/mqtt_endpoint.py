"""Where the device's MQTT client connects and how it secures the connection.

`MqttEndpoint` reads config key `mqtt.url` (mqtts and wss, or mqtt and ws only with
`mqtt.allow_insecure`); `tls_context` builds the TLS context from `mqtt.ca`, `mqtt.cert` and
`mqtt.key`. Both raise ValueError naming the config key at fault; `MqttClient` calls them
when it is built, so a bad config fails at start-up rather than on the first connect.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Final, Literal, Self
from urllib.parse import urlsplit

_SCHEMES: Final[dict[str, tuple[bool, Literal["tcp", "websockets"], int]]] = {
    # scheme: (TLS, paho transport, default port)
    "mqtts": (True, "tcp", 8883),
    "mqtt": (False, "tcp", 1883),
    "wss": (True, "websockets", 443),
    "ws": (False, "websockets", 80),
}


@dataclass(frozen=True)
class MqttEndpoint:
    """Where and how to connect, as read from an `mqtt.url`."""

    scheme: str
    host: str
    port: int
    tls: bool
    transport: Literal["tcp", "websockets"]
    path: str

    @classmethod
    def from_url(cls, url: str, *, allow_insecure: bool) -> Self:
        """Parse `mqtts://host[:port]`, `wss://host[:port]/path` (or, when `allow_insecure`,
        `mqtt://` and `ws://`); raises ValueError naming `mqtt.url` otherwise."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"mqtt.url: cannot parse {url!r}: {exc}") from None
        scheme = parts.scheme.lower()
        if scheme not in _SCHEMES:
            raise ValueError(
                f"mqtt.url: scheme of {url!r} must be mqtts or wss (or mqtt, ws "
                "with mqtt.allow_insecure = true)"
            )
        tls, transport, default_port = _SCHEMES[scheme]
        if not tls and not allow_insecure:
            raise ValueError(
                f"mqtt.url: {url!r} is not encrypted; use mqtts:// or wss://, or "
                "set mqtt.allow_insecure = true"
            )
        if parts.username is not None or parts.password is not None:
            # Credentials in a URL end up in logs; they belong in mqtt.username/password.
            raise ValueError("mqtt.url: must not contain credentials; use mqtt.username/password")
        if not parts.hostname:
            raise ValueError(f"mqtt.url: {url!r} names no host")
        if transport == "tcp" and parts.path not in ("", "/"):
            raise ValueError(f"mqtt.url: {url!r}: a path only makes sense for ws:// and wss://")
        if parts.query or parts.fragment:
            raise ValueError(f"mqtt.url: {url!r}: query and fragment are not supported")
        return cls(
            scheme, parts.hostname, port or default_port, tls, transport, parts.path or "/mqtt"
        )

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        path = self.path if self.transport == "websockets" else ""
        return f"{self.scheme}://{host}:{self.port}{path}"


def tls_context(ca: str | None, cert: str | None, key: str | None) -> ssl.SSLContext:
    """Verify the broker against `ca` (hostname included) and present cert/key if given.

    The paths are config keys `mqtt.ca`, `mqtt.cert` and `mqtt.key`; a file that cannot be
    loaded raises ValueError naming its key.
    """
    try:
        ctx = ssl.create_default_context(cafile=ca)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"mqtt.ca: cannot load {ca!r}: {exc}") from None
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    if key is not None and cert is None:
        raise ValueError("mqtt.key: given without mqtt.cert")
    if cert is not None:
        try:
            ctx.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"mqtt.cert/mqtt.key: cannot load {cert!r} / {key!r}: {exc}") from None
    return ctx
