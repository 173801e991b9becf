"""Fixtures shared by every test package: real brokers, TURN servers, browsers, namespaces."""

from tests.infra import (  # noqa: F401  (pytest finds fixtures by name)
    chromium,
    coturn_server,
    firefox,
    mosquitto_broker,
    netns_topology,
    pki,
)
