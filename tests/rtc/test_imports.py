"""agent/rtc imports nothing of the project outside itself, and has no import cycle.

Issue 6: rtcp.py, rtcp_base.py and twcc.py imported each other in a circle. The graph is
read from the source (relative imports resolved), so a lazy import inside a function counts.
"""

from __future__ import annotations

import ast
import pkgutil
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import agent.rtc


def _modules() -> dict[str, Path]:
    found = {"agent.rtc": Path(agent.rtc.__path__[0]) / "__init__.py"}
    for info in pkgutil.walk_packages(agent.rtc.__path__, "agent.rtc."):
        base = Path(agent.rtc.__path__[0]).joinpath(*info.name.split(".")[2:])
        found[info.name] = base / "__init__.py" if info.ispkg else base.with_suffix(".py")
    return found


def _imports(name: str, path: Path, modules: set[str]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            # "from pkg import mod" needs only mod; "from pkg import name" runs pkg/__init__.
            for alias in node.names:
                submodule = f"{module}.{alias.name}"
                targets.add(submodule if submodule in modules else module)
    return targets


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    names = set(modules)
    return {name: _imports(name, path, names) & names - {name} for name, path in modules.items()}


def test_rtc_imports_nothing_else_of_the_project() -> None:
    modules = _modules()
    outside = {
        (name, target)
        for name, path in modules.items()
        for target in _imports(name, path, set(modules))
        if target.split(".")[0] in ("agent", "hw") and not target.startswith("agent.rtc")
    }
    assert outside == set()


def test_rtc_has_no_import_cycle() -> None:
    try:
        tuple(TopologicalSorter(_graph()).static_order())
    except CycleError as exc:
        raise AssertionError(f"import cycle: {exc.args[1]}") from None


def test_rtcp_families_never_import_the_dispatcher() -> None:
    graph = _graph()
    for family in ("header", "reports", "feedback", "twcc", "ntp"):
        assert "agent.rtc.rtcp.compound" not in graph[f"agent.rtc.rtcp.{family}"], family
    assert {"reports", "feedback", "twcc"} <= {
        t.rpartition(".")[2] for t in graph["agent.rtc.rtcp.compound"]
    }
