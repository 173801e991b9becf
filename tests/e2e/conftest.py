"""Fixtures of the end-to-end tests: loopback-only aiortc, a production-like broker, the agent."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.runtime.app import Agent
from tests.e2e.aiortc_viewer import loopback_only_host_addresses
from tests.e2e.mqtt_rig import running_agent
from tests.infra.mosquitto import MosquittoBroker
from tests.infra.pki import Pki


@pytest.fixture(autouse=True)
def _loopback(monkeypatch: Any) -> None:
    loopback_only_host_addresses(monkeypatch)


@pytest.fixture
def broker(tmp_path: Path, pki: Pki) -> Iterator[MosquittoBroker]:
    # As in production: the broker binds each client id to its certificate CN.
    with MosquittoBroker(tmp_path / "broker", pki, bind_client_id=True) as broker:
        yield broker


@pytest.fixture
async def agent(broker: MosquittoBroker, tmp_path: Path) -> AsyncIterator[Agent]:
    async with running_agent(broker, tmp_path) as agent:
        yield agent
