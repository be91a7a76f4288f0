"""The layer rule, read off the source: every import points down, and none loops.

import-linter checks the same in `make lint` (pyproject's [tool.importlinter]);
this test also sees what import-linter cannot: the generated ``actorgrpc.v1``
(mapped from generated/) and imports of the root package itself. Every
import counts, deferred ones and ``TYPE_CHECKING`` ones included.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "actorgrpc"

#: Bottom up; a module may import its own layer and those before it.
LAYERS = ["core", "supervision", "remote", "hosting", "cli"]
#: What the layers without the wire must never import.
NO_WIRE = ("actorgrpc.v1", "grpc", "grpc_health", "grpc_reflection", "google", "psutil")


def modules(root: Path) -> dict[str, Path]:
    """Dotted name -> file, for every module under ``root`` (a package directory)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every module ``name`` imports, at any depth of its source."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
            for alias in node.names:  # `from pkg import module`
                if f"{module}.{alias.name}" in known:
                    found.add(f"{module}.{alias.name}")
    return found


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) >= 2 and parts[0] == "actorgrpc":
        if parts[1] in LAYERS:
            return LAYERS.index(parts[1])
        if parts[1] == "testing":
            return LAYERS.index("cli")
    return None


def violations(root: Path) -> list[str]:
    """Every import of the tree under ``root`` that breaks the rule, as text."""
    found = modules(root)
    known = set(found)
    problems = []
    graph: dict[str, set[str]] = {}
    for name, path in found.items():
        targets = imports(name, path, known)
        graph[name] = {t for t in targets if t in known and t != name}
        mine = layer_of(name)
        if mine is None:
            continue  # the facade and its compatibility modules sit on top
        for target in sorted(targets):
            theirs = layer_of(target)
            if theirs is not None and theirs > mine:
                problems.append(f"{name} imports {target}, a layer above it")
            inside = mine <= LAYERS.index("hosting")  # cli and testing sit beside the facade
            if inside and target == "actorgrpc":
                problems.append(f"{name} imports the root package (the facade)")
            if (
                inside
                and target.startswith("actorgrpc.")
                and target.split(".")[1]
                not in (
                    *LAYERS,
                    "testing",
                    "v1",
                )
            ):
                problems.append(f"{name} imports the compatibility module {target}")
            if mine <= LAYERS.index("supervision") and any(
                target == w or target.startswith(w + ".") for w in NO_WIRE
            ):
                problems.append(f"{name} imports {target}, which belongs to the wire")
    problems.extend(f"import cycle: {' -> '.join(c)}" for c in cycles(graph))
    return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def test_the_package_keeps_the_layer_rule():
    assert violations(PACKAGE) == []


def test_every_layer_is_a_package_with_modules():
    found = modules(PACKAGE)
    for layer in LAYERS[:-1]:
        assert f"actorgrpc.{layer}" in found, layer
        assert any(m.startswith(f"actorgrpc.{layer}.") for m in found), layer
    assert "actorgrpc.cli" in found


@pytest.mark.parametrize(
    ("where", "source", "complaint"),
    [
        ("core/a.py", "def f():\n    from actorgrpc.remote import wire\n", "a layer above it"),
        (
            "core/a.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import grpc\n",
            "belongs to the wire",
        ),
        ("supervision/a.py", "from actorgrpc.v1 import mailbox_pb2\n", "belongs to the wire"),
        ("remote/a.py", "from actorgrpc import send\n", "root package"),
        ("hosting/a.py", "from actorgrpc.actor import Actor\n", "compatibility module"),
        ("core/a.py", "from actorgrpc.core import b\n", "import cycle"),
    ],
)
def test_the_check_catches_what_breaks_the_rule(tmp_path, where, source, complaint):
    root = tmp_path / "actorgrpc"
    for layer in LAYERS[:-1]:
        (root / layer).mkdir(parents=True)
        (root / layer / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    (root / "core" / "b.py").write_text("from actorgrpc.core import a\n")
    (root / where).write_text(source)
    assert any(complaint in problem for problem in violations(root)), violations(root)
