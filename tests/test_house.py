"""The shape of the code (docs/ARCHITECTURE.md): no import cycles, dependencies pointing one
way, and modules and functions small enough to read."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("agent", "hw")
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60
# Where a longer function reads better whole; each with its reason (docs/ARCHITECTURE.md).
LONG_FUNCTIONS: dict[str, str] = {}
LONG_MODULES: dict[str, str] = {}

# The two leaves of the house: they import nothing of the project outside themselves.
SELF_CONTAINED = ("hw", "agent.rtc")
# Who else may import whom: a package prefix -> prefixes of the project it must not import.
FORBIDDEN = {
    "agent.rpc": (
        "agent.net",
        "agent.media",
        "agent.signaling",
        "agent.control",
        "agent.config",
        "agent.runtime",
        "agent.tools",
        "hw",
    ),
    "agent.net": ("agent.signaling", "agent.control", "agent.runtime", "agent.tools"),
    "agent.media": (
        "agent.net",
        "agent.signaling",
        "agent.control",
        "agent.runtime",
        "agent.tools",
    ),
    "agent.signaling": (
        "agent.control",
        "agent.runtime",
        "agent.tools",
        "agent.net",
        "agent.media",
    ),
    "agent.control": ("agent.signaling", "agent.runtime", "agent.tools"),
    "agent.config": (
        "agent.net",
        "agent.media",
        "agent.signaling",
        "agent.control",
        "agent.runtime",
        "agent.tools",
        # hw.kinds, hw.source and hw.controls only: names and enums, no backend loaded.
        "hw.open",
        "hw.filesrc",
        "hw.testsrc",
        "hw.picamera2src",
        "hw.v4l2src",
    ),
    "agent.runtime": ("agent.tools",),
    # The fleet client speaks the public contract only, as an outside tool would.
    "agent.client": (
        "agent.rtc",
        "agent.net",
        "agent.media",
        "agent.rpc",
        "agent.control",
        "agent.config",
        "agent.runtime",
        "agent.tools",
        "hw",
    ),
}


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _imports(name: str, path: Path) -> set[str]:
    """The project modules ``name`` imports (a submodule named in ``from pkg import sub``
    counts as the submodule)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names
            ]
        found.update(t for t in targets if t in MODULES and t != name)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def test_the_graph_sees_the_project() -> None:
    assert "agent.runtime.app" in GRAPH and "agent.net.sessions" in GRAPH["agent.runtime.app"]


def test_no_import_cycle() -> None:
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_the_leaves_import_nothing_else_of_the_project() -> None:
    wrong = [
        f"{name} imports {target}"
        for leaf in SELF_CONTAINED
        for name, targets in GRAPH.items()
        if name == leaf or name.startswith(leaf + ".")
        for target in targets
        if not (target == leaf or target.startswith(leaf + "."))
    ]
    assert wrong == []


def test_rtcp_families_never_import_their_dispatcher() -> None:
    # pion's shape: the families share a header module; only compound knows them all.
    for family in ("header", "reports", "feedback", "twcc", "ntp"):
        assert "agent.rtc.rtcp.compound" not in GRAPH[f"agent.rtc.rtcp.{family}"], family
    assert {"reports", "feedback", "twcc"} <= {
        t.rpartition(".")[2] for t in GRAPH["agent.rtc.rtcp.compound"]
    }


def test_dependencies_point_one_way() -> None:
    wrong = [
        f"{name} imports {target}"
        for name, targets in GRAPH.items()
        for prefix, banned in FORBIDDEN.items()
        if name == prefix or name.startswith(prefix + ".")
        for target in targets
        if any(target == b or target.startswith(b + ".") for b in banned)
    ]
    assert wrong == []


def test_modules_are_small() -> None:
    long = {
        name: n
        for name, path in MODULES.items()
        if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES and name not in LONG_MODULES
    }
    assert long == {}


def test_functions_are_short() -> None:
    long: dict[str, int] = {}
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                size = node.end_lineno - first + 1
                key = f"{name}.{node.name}:{node.lineno}"
                if size > MAX_FUNCTION_LINES and f"{name}.{node.name}" not in LONG_FUNCTIONS:
                    long[key] = size
    assert long == {}
