"""`edgecam bench network`: the media path over shaped real networks, against aiortc.

The scenarios of issue 11's acceptance tests (tests/e2e/test_network.py), printing figures
instead of asserting bounds: a 2 Mbit/s 640x360 test pattern to headless Chromium through a
1 Mbit/s 40 ms bottleneck and back to full capacity, through 3% random loss, and to two
viewers of which one sits behind 300 kbit/s. Each scenario runs with edgecam's sender
(transport-cc estimation, pacing, bitrate policy) and with aiortc's (REMB-driven encoder
bitrate, no pacing) in the same set-up.

It needs root (network namespaces, tc), Chromium, and a development checkout: the
namespace and browser rig is the tests' own (tests/e2e/network_rig.py).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from agent.tools.args import Parser, plain

SCENARIOS = ("bottleneck", "loss", "two-viewers")
SENDERS = ("edgecam", "aiortc")


def build_parser() -> Parser:
    parser = Parser(prog="edgecam bench network", description=plain(__doc__.split("\n\n")[0]))
    parser.add_argument(
        "--scenario",
        choices=(*SCENARIOS, "all"),
        default="all",
        help="the shaped path: a 1 Mbit/s bottleneck then restored capacity, 3%% random "
        "loss, or two viewers one behind 300 kbit/s (default all)",
    )
    parser.add_argument(
        "--sender",
        choices=(*SENDERS, "both"),
        default="both",
        help="whose sender streams: ours, aiortc's, or both in turn (default both)",
    )
    return parser


def main(argv: list[str] | None) -> int:
    """Run the chosen scenarios; print one figures line per scenario and sender."""
    args = build_parser().parse_args(argv)
    if os.geteuid() != 0:
        print("edgecam bench network: needs root (network namespaces and tc)", file=sys.stderr)
        return 1
    try:
        # By name: the rig is test code, not part of the agent (nor of its type check).
        network_bench: Any = importlib.import_module("tests.e2e.network_bench")
    except ImportError as exc:
        print(
            f"edgecam bench network: needs a development checkout with tests/ ({exc})",
            file=sys.stderr,
        )
        return 1
    logging.basicConfig(level=logging.WARNING)
    scenarios = SCENARIOS if args.scenario == "all" else (args.scenario,)
    senders: Sequence[str] = SENDERS if args.sender == "both" else (args.sender,)
    for scenario in scenarios:
        for sender in senders:
            figures = asyncio.run(network_bench.run(scenario, sender))
            print(format_figures(scenario, sender, figures), flush=True)
    return 0


def format_figures(scenario: str, sender: str, figures: dict[str, object]) -> str:
    """One line: scenario, sender, then key=value figures in their order."""
    parts = []
    for key, value in figures.items():
        shown = f"{value:.2f}" if isinstance(value, float) else str(value)
        parts.append(f"{key}={shown}")
    return f"{scenario:<12} {sender:<8} " + " ".join(parts)
