"""Reusable test infrastructure: a throwaway PKI, mosquitto, coturn, network namespaces, browsers.

Fixtures (expose them from tests/conftest.py by importing these names):
`pki`, `mosquitto_broker`, `coturn_server`, `netns_topology`, `chromium`, `firefox`.
"""

from __future__ import annotations

from tests.infra.browsers import (
    BidiError,
    FirefoxBidi,
    chromium,
    evaluate,
    firefox,
    launch_chromium,
    launch_firefox,
    open_page,
    page_webrtc_stats,
    wait_frames_decoded,
)
from tests.infra.coturn import Coturn, coturn_server
from tests.infra.mosquitto import MosquittoBroker, mosquitto_broker
from tests.infra.netns import Host, Topology, netns_entered, netns_topology
from tests.infra.pki import Pki, pki
from tests.infra.tools import free_port, require_tool

__all__ = [
    "BidiError",
    "Coturn",
    "FirefoxBidi",
    "Host",
    "MosquittoBroker",
    "Pki",
    "Topology",
    "chromium",
    "coturn_server",
    "evaluate",
    "firefox",
    "free_port",
    "launch_chromium",
    "launch_firefox",
    "mosquitto_broker",
    "netns_entered",
    "netns_topology",
    "open_page",
    "page_webrtc_stats",
    "pki",
    "require_tool",
    "wait_frames_decoded",
]
