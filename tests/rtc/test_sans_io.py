"""agent/rtc is the sans-IO core: no module there may reach for the clock, sockets or threads."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import types
from pathlib import Path

import agent.rtc

FORBIDDEN = {"asyncio", "socket", "threading", "time", "selectors", "subprocess"}


def _core_modules() -> list[str]:
    # walk_packages, not iter_modules: the sdp/ and rtcp/ packages' modules count too.
    return [m.name for m in pkgutil.walk_packages(agent.rtc.__path__, "agent.rtc.")]


def test_core_has_modules() -> None:
    assert {"agent.rtc.peer", "agent.rtc.sdp.parse", "agent.rtc.sctp.association"} <= set(
        _core_modules()
    )


def test_no_core_module_imports_io_or_clock() -> None:
    offenders: list[str] = []
    for name in _core_modules():
        module = importlib.import_module(name)
        source = Path(module.__file__ or "").read_text()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                roots = {node.module.split(".")[0]}
            else:
                continue
            offenders += [f"{name} imports {root}" for root in roots & FORBIDDEN]
        # Also catch a module object smuggled in through another import.
        for value in vars(module).values():
            if isinstance(value, types.ModuleType) and value.__name__ in FORBIDDEN:
                offenders.append(f"{name} holds {value.__name__}")
    assert offenders == []
