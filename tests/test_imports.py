"""The import graph of ``calogen``: no cycle, and the layer rules of DESIGN.md.

Every module under ``src/calogen`` is parsed with :mod:`ast`; imports at module level and inside
functions both count (a deferred import hides a cycle, it does not remove it).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _graph() -> dict[str, set[str]]:
    """``module -> calogen modules it imports`` (``from a import b`` counts as ``a.b`` when
    ``a.b`` is a module, else as ``a``)."""
    files = {_module_name(p): p for p in (SRC / "calogen").rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[:len(base) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in files else module
                           for a in node.names]
            else:
                continue
            for target in targets:
                while target and target not in files:  # a.b.c where a.b is the module
                    target = target.rpartition(".")[0]
                if target.startswith("calogen") and target != name:
                    deps.add(target)
        graph[name] = deps
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (``[a, b, ..., a]``), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if dep not in state and (found := visit(dep)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


GRAPH = _graph()


def _importers(package: str, of: str) -> list[str]:
    """Modules of ``package`` importing anything under ``of``."""
    return sorted(m for m, deps in GRAPH.items()
                  if (m == package or m.startswith(package + "."))
                  and any(d == of or d.startswith(of + ".") for d in deps))


def test_the_graph_sees_deferred_imports() -> None:
    """Function-level imports are edges too (the CLI imports its layers inside commands)."""
    assert "calogen.pipelines.quickstart" in GRAPH["calogen.cli.quickstart_cmd"]


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle() -> None:
    cycle = _cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_metrics_do_not_import_models() -> None:
    assert _importers("calogen.metrics", "calogen.models") == []


def test_models_do_not_open_data_files_or_import_physics() -> None:
    assert _importers("calogen.models", "calogen.data.showerset") == []
    assert _importers("calogen.models", "calogen.physics") == []


def test_nn_blocks_do_not_import_families() -> None:
    assert _importers("calogen.models.nn", "calogen.models.families") == []


def test_baselines_are_numpy_only() -> None:
    deps = GRAPH["calogen.baselines"]
    assert not any(d.startswith(("calogen.models", "calogen.train")) for d in deps), deps
    assert "import torch" not in (SRC / "calogen" / "baselines.py").read_text()


def test_baselines_do_not_import_physics() -> None:
    assert not any(d.startswith("calogen.physics") for d in GRAPH["calogen.baselines"])


def test_data_does_not_import_physics() -> None:
    assert _importers("calogen.data", "calogen.physics") == []


def test_only_the_cli_imports_pipelines() -> None:
    """The CLI, and the fuzz harness of ``calogen.testing`` that drives whole workflows."""
    importers = [m for m in _importers("calogen", "calogen.pipelines")
                 if not m.startswith(("calogen.cli", "calogen.pipelines", "calogen.testing"))]
    assert importers == []
