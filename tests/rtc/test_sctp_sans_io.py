"""test_sans_io.py walks agent.rtc's top level; the sctp package's modules must obey too."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import agent.rtc.sctp

FORBIDDEN = {"asyncio", "socket", "threading", "time", "selectors", "subprocess"}


def test_sctp_modules_import_no_io_or_clock() -> None:
    names = [f"agent.rtc.sctp.{m.name}" for m in pkgutil.iter_modules(agent.rtc.sctp.__path__)]
    assert "agent.rtc.sctp.association" in names
    offenders = []
    for name in names:
        source = Path(importlib.import_module(name).__file__ or "").read_text()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                roots = {node.module.split(".")[0]}
            else:
                continue
            offenders += [f"{name} imports {root}" for root in roots & FORBIDDEN]
    assert offenders == []
