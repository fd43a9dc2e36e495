"""The house's rules: packages by job, imports pointing one way, no circle anywhere.

The module graph is read from the source (every import: top-level, lazy inside functions,
under `TYPE_CHECKING`, and module names given as strings to `import_module`), so a circle
that only exists at type-checking time or on first use is still a circle here.
docs/architecture.md explains the layers in words.
"""

from __future__ import annotations

import ast
import graphlib
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "agentloop"

VOCABULARY = "vocabulary"
VOCABULARY_MODULES = {"errors", "tasks", "limits", "_text", "_util", "_version"}
"""Top-level modules that every layer may use: the error tree, task values, limits, text."""
ENTRY_POINTS = {"asgi", "web", "serve", "cli", "demo"}
FACE = "face"
"""`agentloop/__init__.py` and `__main__.py`: they may import anything, nothing imports them."""

BELOW_AGENT = {VOCABULARY, "tracing", "journal", "core", "backends", "engine", "mcp"}
MAY_IMPORT: Mapping[str, set[str]] = {
    VOCABULARY: set(),
    "tracing": {VOCABULARY},
    "journal": {VOCABULARY},
    "core": {VOCABULARY, "tracing"},
    "backends": {VOCABULARY, "core"},
    "engine": {VOCABULARY, "core", "backends", "tracing", "journal"},
    "mcp": {VOCABULARY, "core", "engine", "tracing", "journal", "agent"},
    "agent": BELOW_AGENT - {"mcp"},
    "asgi": BELOW_AGENT | {"agent"},
    "web": BELOW_AGENT | {"agent", "asgi", "demo", "testing"},
    "serve": BELOW_AGENT | {"agent", "asgi"},
    "demo": {"testing"},
    "cli": BELOW_AGENT | {"agent", "asgi", "web", "serve", "demo", "testing"},
    "testing": set(),
    FACE: BELOW_AGENT | {"agent", "asgi", "web", "serve", "cli", "demo", "testing"},
}
"""Which other groups each group may import (its own modules it always may)."""

CORE_PACKAGES = {"core", "engine", "journal", "tracing", "backends"}
"""Packages that run without smolagents' agents and without litellm."""
NOT_IN_CORE = {"smolagents", "litellm"}

INTERNAL_PACKAGES = {"tracing", "core", "engine", "agent"}
"""Packages with no public face: their `__init__.py` is a docstring and re-exports nothing."""
PUBLIC_FACES = (
    "agentloop",
    "agentloop.journal",
    "agentloop.backends",
    "agentloop.mcp",
    "agentloop.testing",
)
MAX_TOP_LEVEL_MODULES = 12


@dataclass(frozen=True)
class Module:
    name: str  # dotted: agentloop.engine.scope (a package's __init__ is the package's name)
    path: Path

    @property
    def is_package(self) -> bool:
        return self.path.name == "__init__.py"

    @property
    def group(self) -> str:
        parts = self.name.split(".")
        if len(parts) == 1 or parts[1] == "__main__":
            return FACE
        return VOCABULARY if parts[1] in VOCABULARY_MODULES else parts[1]


def all_modules() -> dict[str, Module]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = Module(".".join(parts), path)
    return found


MODULES = all_modules()


def imports_of(module: Module, known: Iterable[str]) -> tuple[set[str], set[str]]:
    """(agentloop modules `module` imports, third-party top-level packages it imports)."""
    known = set(known)
    package = module.name.split(".") if module.is_package else module.name.split(".")[:-1]
    ours: set[str] = set()
    theirs: set[str] = set()

    def add(target: str, names: Iterable[str] = ()) -> None:
        for name in names:
            if f"{target}.{name}" in known:  # `from . import submodule`
                ours.add(f"{target}.{name}")
            else:
                ours.add(target)
        if not names:
            ours.add(target)

    for node in ast.walk(ast.parse(module.path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join([*base, *(node.module.split(".") if node.module else [])])
                add(target, [alias.name for alias in node.names])
            elif node.module and node.module.split(".")[0] == "agentloop":
                add(node.module, [alias.name for alias in node.names])
            elif node.module:
                theirs.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "agentloop":
                    add(alias.name)
                else:
                    theirs.add(alias.name.split(".")[0])
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and "." in node.value  # the bare "agentloop" is the logger's name
            and node.value in known
            and node.value != ".".join(package)
        ):
            # a module loaded by name (`import_module("agentloop.journal.postgres")`); a
            # module naming its own package is finding its resources, not importing code
            ours.add(node.value)
    ours.discard(module.name)
    return ours, theirs


GRAPH = {name: imports_of(module, MODULES)[0] for name, module in MODULES.items()}


def test_the_module_graph_has_no_circle() -> None:
    assert_acyclic(GRAPH, "module")


def test_the_package_graph_has_no_circle() -> None:
    groups: dict[str, set[str]] = {}
    for name, targets in GRAPH.items():
        group = MODULES[name].group
        groups.setdefault(group, set()).update(
            MODULES[t].group for t in targets if MODULES[t].group != group
        )
    assert_acyclic(groups, "package")


def assert_acyclic(graph: Mapping[str, Iterable[str]], what: str) -> None:
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as error:
        # graphlib lists each node before the nodes that depend on it: reversed, each one
        # imports the next
        circle = " -> ".join(reversed(error.args[1]))
        pytest.fail(f"a {what} circle (each imports the next): {circle}")


def test_the_acyclicity_check_names_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}  # a imports b imports c imports a
    with pytest.raises(pytest.fail.Exception, match=r"a module circle \(each imports the next\): "):
        assert_acyclic(graph, "module")
    try:
        assert_acyclic(graph, "module")
    except pytest.fail.Exception as failure:
        circle = str(failure).rsplit(": ", 1)[1].split(" -> ")
    assert circle[0] == circle[-1]
    assert all(after in graph[before] for before, after in itertools.pairwise(circle))


@pytest.mark.parametrize("name", sorted(MODULES))
def test_each_module_imports_only_what_its_package_may(name: str) -> None:
    module = MODULES[name]
    ours, theirs = imports_of(module, MODULES)
    allowed = MAY_IMPORT[module.group] | {module.group}
    wrong = sorted(t for t in ours if MODULES[t].group not in allowed)
    assert not wrong, f"{name} ({module.group}) may not import {wrong}"
    imports_the_face = sorted(t for t in ours if MODULES[t].group == FACE)
    assert module.group == FACE or not imports_the_face, f"{name} imports the public face"
    if module.group in CORE_PACKAGES:
        assert not theirs & NOT_IN_CORE, f"{name} imports {sorted(theirs & NOT_IN_CORE)}"


def test_every_module_belongs_to_a_package_with_rules() -> None:
    unknown = sorted({m.group for m in MODULES.values()} - set(MAY_IMPORT))
    assert not unknown, f"packages with no rule in tests/test_layers.py: {unknown}"


def test_the_top_level_is_small() -> None:
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top


@pytest.mark.parametrize("package", sorted({m.group for m in MODULES.values()} - {FACE}))
def test_each_package_states_its_job_and_rule(package: str) -> None:
    if package == VOCABULARY or MODULES[f"agentloop.{package}"].path.name != "__init__.py":
        return  # a single module (`asgi`)
    init = MODULES[f"agentloop.{package}"]
    docstring = ast.get_docstring(ast.parse(init.path.read_text())) or ""
    assert docstring, f"{init.path} has no docstring"
    if package in INTERNAL_PACKAGES | {"journal"}:
        assert "May import" in docstring, f"{init.path}'s docstring does not state its rule"


@pytest.mark.parametrize("package", sorted(INTERNAL_PACKAGES))
def test_internal_packages_re_export_nothing(package: str) -> None:
    tree = ast.parse(MODULES[f"agentloop.{package}"].path.read_text())
    statements = [node for node in tree.body if not isinstance(node, ast.Expr)]
    assert not statements, f"agentloop/{package}/__init__.py should hold only its docstring"


def public_names() -> set[str]:
    names: set[str] = set()
    for face in PUBLIC_FACES:
        tree = ast.parse(MODULES[face].path.read_text())
        names |= set(declared_all(tree))
    return names


def declared_all(tree: ast.Module) -> list[str]:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return list(ast.literal_eval(node.value))
    return []


@pytest.mark.parametrize(
    "name",
    sorted(
        n
        for n, m in MODULES.items()
        if m.group in INTERNAL_PACKAGES | {"journal", "backends"} and not m.is_package
    ),
)
def test_a_module_without_an_underscore_holds_public_names(name: str) -> None:
    """A path without an underscore is public: it defines something the faces export."""
    leaf = name.rsplit(".", 1)[1]
    if leaf.startswith("_") or name == "agentloop.backends.ray":  # ray is a public module
        return
    declared = set(declared_all(ast.parse(MODULES[name].path.read_text())))
    assert declared & public_names(), (
        f"{name} exports nothing public ({sorted(declared)}): name it `_{leaf}`"
    )
