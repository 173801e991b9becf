"""Connecting a fleet client to the broker: settings, TLS, the client id, readable failures.

The same rules as the agent's `[mqtt]` (agent/signaling/mqtt_endpoint.py): `mqtts://` or
`wss://` with the broker verified against `ca`, a client certificate presented; `mqtt://` and
`ws://` only with `allow_insecure`. Where the broker sets `use_username_as_clientid`, the ACL's
`rpc/%c` topics use the certificate's CN, so the client id defaults to that CN.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import ssl
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
from aiomqtt.exceptions import MqttConnectError
from cryptography import x509
from cryptography.x509.oid import NameOID

from agent.client.errors import ConnectError
from agent.signaling.mqtt_endpoint import MqttEndpoint, tls_context

CONNECT_TIMEOUT = 10.0
_loggers = itertools.count(1)


class PahoErrors(logging.Handler):
    """Collects the errors paho logs but does not raise (a TLS alert read after the handshake
    is only logged, and the CONNACK wait then runs into its timeout): `failed` is set at the
    first, so a connect can give up at once with the real reason."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.last: str | None = None
        self.failed = asyncio.Event()
        self.logger = logging.getLogger(f"agent.client.paho.{next(_loggers)}")
        self.logger.propagate = False  # the reason reaches the user once, in the error
        self.logger.setLevel(logging.WARNING)
        self.logger.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            self.last = record.getMessage()
            self.failed.set()


@dataclass(frozen=True)
class FleetSettings:
    """Where the broker is and who we are: the agent's `[mqtt]` keys, as a controller."""

    broker: str
    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    prefix: str = "edgecam"
    client_id: str | None = None
    allow_insecure: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    keepalive: int = 30


def common_name(cert_path: str) -> str:
    """The CN of the first certificate in a PEM file; ConnectError if there is none."""
    try:
        cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    except (OSError, ValueError) as exc:
        raise ConnectError(f"cannot read certificate {cert_path!r}: {exc}") from None
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names:
        raise ConnectError(f"certificate {cert_path!r} has no CN: give a client id")
    value = names[0].value
    return value if isinstance(value, str) else value.decode()


def resolve_client_id(settings: FleetSettings) -> str:
    """The explicit client id, else the certificate's CN, else the username."""
    if settings.client_id:
        return settings.client_id
    if settings.cert:
        return common_name(settings.cert)
    if settings.username:
        return settings.username
    raise ConnectError("no client id: give a client certificate (its CN is used) or a client id")


def explain_connect_failure(exc: BaseException, endpoint: MqttEndpoint) -> str:
    """One line for a person, from whatever paho, ssl or the OS raised."""
    text = str(exc)
    low = text.lower()
    if isinstance(exc, MqttConnectError):
        return f"broker {endpoint} refused the connection: {text}"
    if "certificate verify failed" in low:
        return f"broker {endpoint}: its certificate is not trusted by the CA given ({text})"
    if any(
        alert in low
        for alert in (
            "certificate required",
            "unknown ca",
            "bad certificate",
            "certificate unknown",
            "certificate expired",
            "certificate revoked",
        )
    ):
        return f"broker {endpoint} refused the client certificate ({text})"
    if "refused" in low:
        return f"cannot reach broker {endpoint}: connection refused"
    if "timed out" in low:
        return f"cannot reach broker {endpoint}: timed out"
    return f"cannot connect to broker {endpoint}: {text or type(exc).__name__}"


def build_client(
    settings: FleetSettings, client_id: str, errors: PahoErrors
) -> tuple[aiomqtt.Client, MqttEndpoint]:
    """An unconnected aiomqtt client (MQTT 5) for `settings` whose paho logs to `errors`;
    ConnectError for bad settings."""
    try:
        endpoint = MqttEndpoint.from_url(settings.broker, allow_insecure=settings.allow_insecure)
        tls: ssl.SSLContext | None = (
            tls_context(settings.ca, settings.cert, settings.key) if endpoint.tls else None
        )
    except ValueError as exc:
        # The agent's messages name its config keys (mqtt.url, ...): say which option.
        raise ConnectError(
            str(exc).replace("mqtt.allow_insecure = true", "--allow-insecure")
        ) from None
    client = aiomqtt.Client(
        endpoint.host,
        endpoint.port,
        username=settings.username,
        password=settings.password,
        identifier=client_id,
        protocol=aiomqtt.ProtocolVersion.V5,
        transport=endpoint.transport,
        websocket_path=endpoint.path if endpoint.transport == "websockets" else None,
        tls_context=tls,
        keepalive=settings.keepalive,
        timeout=CONNECT_TIMEOUT,
        logger=errors.logger,
    )
    return client, endpoint
