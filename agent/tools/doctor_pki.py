"""`edgecam doctor`'s checks of the broker connection: the device certificate (dates, CN,
key), the broker's TCP port, and a TLS handshake made with the device's own certificate.

The handshake stops short of MQTT CONNECT on purpose: the broker takes the certificate's CN
as the client id, so a CONNECT would knock the running agent off the broker.
"""

from __future__ import annotations

import datetime
import socket
import ssl
from typing import Final

from cryptography import x509
from cryptography.x509.oid import NameOID

from agent.config import Config
from agent.config.check import public_der, read_certificates, read_private_key
from agent.signaling.mqtt_endpoint import tls_context
from agent.tools.doctor_result import CheckResult, fail, ok, skip, warn

EXPIRY_WARNING: Final = datetime.timedelta(days=30)
CONNECT_TIMEOUT: Final = 5.0
# After the handshake, how long to listen for the alert a TLS 1.3 broker sends when it
# refuses the client certificate (the client's side of the handshake is over by then).
ALERT_WAIT: Final = 1.0
RENEW: Final = "issue a new one (edgecam ca issue device ID) and install it"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _cn(cert: x509.Certificate) -> str | None:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None


def device_certificate(config: Config) -> x509.Certificate | CheckResult:
    """The first certificate of mqtt.cert, or the result that says why there is none."""
    if not config.mqtt.tls or not config.mqtt.cert:
        return skip("certificate", "no client certificate configured (mqtt.cert)")
    try:
        return read_certificates(config.mqtt.cert)[0]
    except ValueError as exc:
        return fail("certificate", f"mqtt.cert: {exc}", "point mqtt.cert at the device's PEM")


def check_validity(config: Config) -> CheckResult:
    cert = device_certificate(config)
    if isinstance(cert, CheckResult):
        return cert
    path, now = config.mqtt.cert, _now()
    after, before = cert.not_valid_after_utc, cert.not_valid_before_utc
    if after < now:
        return fail("certificate", f"{path} expired on {after:%Y-%m-%d %H:%M} UTC", RENEW)
    if before > now:
        return fail(
            "certificate",
            f"{path} is not valid before {before:%Y-%m-%d %H:%M} UTC (clock: {now:%Y-%m-%d})",
            "set the clock (see the clock line), or issue a certificate valid from now",
        )
    left = (after - now).days
    detail = f"{path} valid until {after:%Y-%m-%d} ({left} days)"
    if after - now < EXPIRY_WARNING:
        return warn("certificate", detail, f"renew before then: {RENEW}")
    return ok("certificate", detail)


def check_ca(config: Config) -> CheckResult:
    if not config.mqtt.tls:
        return skip("mqtt.ca", "plain mqtt://: no TLS")
    if not config.mqtt.ca:
        return ok("mqtt.ca", "the system's trusted CAs verify the broker")
    try:
        cas = read_certificates(config.mqtt.ca)
    except ValueError as exc:
        return fail("mqtt.ca", str(exc), "install the CA that signed the broker's certificate")
    valid = [ca for ca in cas if ca.not_valid_before_utc <= _now() <= ca.not_valid_after_utc]
    if not valid:
        return fail(
            "mqtt.ca",
            f"{config.mqtt.ca}: no certificate in it is valid now",
            "install the fleet's current CA certificate",
        )
    until = max(ca.not_valid_after_utc for ca in valid)
    if until - _now() < EXPIRY_WARNING:
        return warn(
            "mqtt.ca",
            f"{config.mqtt.ca} expires on {until:%Y-%m-%d}",
            "roll the fleet over to a new CA before then",
        )
    count = f"{len(cas)} certificate(s)"
    return ok("mqtt.ca", f"{config.mqtt.ca}: {count}, valid until {until:%Y-%m-%d}")


def check_cn(config: Config) -> CheckResult:
    cert = device_certificate(config)
    if isinstance(cert, CheckResult):
        return skip("certificate CN", "no certificate to read (see the certificate line)")
    cn = _cn(cert)
    if cn != config.device.id:
        return fail(
            "certificate CN",
            f"CN of {config.mqtt.cert} is {cn!r}, device.id is {config.device.id!r}: the "
            "broker takes the CN as user name and client id, and its ACL will deny this "
            "device's topics",
            f"set device.id = {cn!r}, or issue a certificate for {config.device.id!r}",
        )
    return ok("certificate CN", f"CN = device.id = {cn!r}")


def check_key(config: Config) -> CheckResult:
    cert = device_certificate(config)
    if isinstance(cert, CheckResult):
        return skip("key", "no certificate to compare with (see the certificate line)")
    assert config.mqtt.key is not None  # load_config: cert and key go together
    try:
        key = read_private_key(config.mqtt.key)
    except ValueError as exc:
        return fail("key", f"mqtt.key: {exc}", "point mqtt.key at the certificate's own key")
    if public_der(key) != public_der(cert):
        return fail(
            "key",
            f"{config.mqtt.key} is not the key of {config.mqtt.cert}",
            "install the key that was made with this certificate",
        )
    return ok("key", f"{config.mqtt.key} is the key of the certificate")


def check_broker(config: Config) -> CheckResult:
    where = f"{config.mqtt.host}:{config.mqtt.port}"
    try:
        with socket.create_connection((config.mqtt.host, config.mqtt.port), CONNECT_TIMEOUT):
            return ok("broker", f"{where} accepts TCP connections")
    except socket.gaierror as exc:
        return fail(
            "broker",
            f"{config.mqtt.host}: cannot resolve the name ({exc.strerror})",
            "check mqtt.url and the DNS settings (resolvectl status)",
        )
    except TimeoutError:
        return fail(
            "broker",
            f"{where}: no answer within {CONNECT_TIMEOUT:g} s",
            "check the network and any firewall between device and broker",
        )
    except OSError as exc:
        return fail(
            "broker",
            f"{where}: {exc.strerror or exc}",
            "start the broker (systemctl status mosquitto) or fix mqtt.url's port",
        )


def _handshake(config: Config, ctx: ssl.SSLContext) -> dict[str, object]:
    """The broker's certificate, once the handshake is done and the broker has not
    refused ours; raises ssl.SSLError or OSError otherwise."""
    raw = socket.create_connection((config.mqtt.host, config.mqtt.port), CONNECT_TIMEOUT)
    with ctx.wrap_socket(raw, server_hostname=config.mqtt.host) as tls:
        peer = tls.getpeercert()
        tls.settimeout(ALERT_WAIT)
        try:
            if tls.recv(1) == b"":
                raise ConnectionError("the broker closed the connection after the handshake")
        except TimeoutError:
            pass  # no alert: the broker accepted the certificate and waits for CONNECT
    return dict(peer or {})


def check_tls(config: Config, broker: CheckResult) -> CheckResult:
    if not config.mqtt.tls:
        return skip("tls", "plain mqtt://: no TLS")
    if broker.status != "ok":
        return skip("tls", "the broker is not reachable")
    m = config.mqtt
    try:
        peer = _handshake(config, tls_context(m.ca, m.cert, m.key))
    except ValueError as exc:  # tls_context: a file that will not load
        return fail("tls", str(exc), "see the certificate, key and file lines")
    except ssl.SSLCertVerificationError as exc:
        return fail(
            "tls",
            f"the broker's certificate does not verify: {exc.verify_message}",
            "mqtt.ca must be the CA that signed the broker's certificate, and the "
            "certificate must name the host of mqtt.url",
        )
    except ssl.SSLError as exc:
        return fail(
            "tls",
            f"the broker refused the handshake: {exc.reason or exc}",
            "the broker must trust the CA that signed mqtt.cert, and the certificate "
            "must be valid (see the certificate line)",
        )
    except OSError as exc:
        return fail(
            "tls",
            f"handshake failed: {exc.strerror or exc}",
            "is mqtt.url's port the broker's TLS listener?",
        )
    not_after = peer.get("notAfter")
    until = f", its certificate valid until {not_after}" if isinstance(not_after, str) else ""
    return ok("tls", f"handshake with the device certificate accepted{until}")
