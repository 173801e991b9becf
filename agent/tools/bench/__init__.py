"""`edgecam bench SCENARIO [--json FILE] [--plot FILE.png]`: figures for people, never asserted.

A registry of scenarios, each a module with ``main(argv) -> int`` imported only when chosen
(so aiortc, Chromium's driver or matplotlib load only where used). Another branch's scenario
plugs in with one `register()` line, or as a module named in ``PLUGINS`` that is picked up when
it is installed.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast


@dataclass(frozen=True)
class Scenario:
    name: str
    module: str
    summary: str


SCENARIOS: dict[str, Scenario] = {}


def register(name: str, module: str, summary: str) -> None:
    """Make ``edgecam bench NAME`` run ``module.main(argv)``."""
    SCENARIOS[name] = Scenario(name, module, summary)


register("startup", "agent.tools.bench.startup", "Chromium offer -> first decoded frame, by phase")
register("fanout", "agent.tools.bench.fanout", "agent CPU per viewer and per packet, N viewers")
register("footprint", "agent.tools.bench.footprint", "RSS, import time, threads and fds per viewer")
register("latency", "agent.tools.bench.latency", "frame in -> last packet out; glass-to-glass")
register("control", "agent.tools.bench.control", "stream.get round trip: MQTT and datachannel")
register(
    "inprocess", "agent.tools.bench.inprocess", "per-packet path alone, no ICE (--datachannel)"
)

# Scenarios that live in modules of their own, registered when present.
PLUGINS: dict[str, tuple[str, str]] = {
    "network": ("agent.tools.bench_network", "network paths (loss, delay, TURN)"),
}
for _name, (_module, _summary) in PLUGINS.items():
    if importlib.util.find_spec(_module) is not None:
        register(_name, _module, _summary)


def main_of(name: str) -> Callable[[list[str]], int]:
    module = importlib.import_module(SCENARIOS[name].module)
    return cast(Callable[[list[str]], int], module.main)


def main(argv: list[str]) -> int:
    """``argv`` is ``[SCENARIO, options...]``; the CLI has checked the scenario's name."""
    name, *rest = argv
    return main_of(name)(rest)
