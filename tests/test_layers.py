"""Imports point one way (DESIGN.md): each layer knows only the layers below it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "agentloop"

CORE_RANKS = {
    # A core module imports only core modules of a lower rank, so the core has no circle: a
    # new import that would close one needs a rank change here, which review sees.
    "_text": 0,
    "_version": 0,
    "cancellation": 0,
    "limits": 0,
    "slots": 0,
    "tasks": 0,
    "threads": 0,
    "watchdog": 0,
    "errors": 1,
    "budgets": 2,
    "approvals": 2,
    "events": 1,
    "references": 2,
    "validation": 2,
    "_render": 2,
    "_isolation": 3,
    "_span_values": 2,
    "_openinference": 3,
    "targets": 4,
    "journal": 3,
    "_journal_codec": 2,
    "_journal_rows": 4,
    "_journal_writer": 4,
    "_replay": 4,
    "sqlite_journal": 5,
    "postgres_journal": 5,
    "_run_journal": 6,
    "_record": 5,
    "catalog": 5,
    "tracing": 7,
    "backends": 6,
    "runners": 8,
    "_model_spans": 8,
    "engine": 9,
    "_submission": 10,
    "_table": 10,
    "_scope_journal": 11,
    "scope": 12,
    "registry": 13,
}
CORE = set(CORE_RANKS)
BRIDGE = {"bridge"}
TOOLS = {"tools"}
AGENT = {
    "agent",
    "run",
    "prompts",
    "streaming",
    "_controller",
    "_durable",
    "_agent_journal",
    "session",
}
ENTRY = {"cli", "demo", "testing", "__main__", "__init__", "asgi", "web"}

ALLOWED = {
    "core": CORE,
    "bridge": {"errors", "_text"},
    "tools": CORE | BRIDGE | TOOLS,
    "agent": CORE | BRIDGE | TOOLS | AGENT,
}
FORBIDDEN_THIRD_PARTY = {"core": {"smolagents", "litellm"}, "bridge": {"smolagents", "litellm"}}


def layer_of(module: str) -> str | None:
    for name, members in (("core", CORE), ("bridge", BRIDGE), ("tools", TOOLS), ("agent", AGENT)):
        if module in members:
            return name
    return None


def imports(path: Path) -> tuple[set[str], set[str]]:
    """(agentloop top-level modules, third-party top-level packages) imported by `path`."""
    package_parts = path.relative_to(PACKAGE).parts[:-1]
    ours, theirs = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package_parts[: len(package_parts) - node.level + 1])
                target = [*base, *(node.module.split(".") if node.module else [])]
                names = target[:1] if target else [alias.name for alias in node.names]
                ours.update(names)
            elif node.module:
                top = node.module.split(".")[0]
                (ours if top == "agentloop" else theirs).add(top)
        elif isinstance(node, ast.Import):
            theirs.update(alias.name.split(".")[0] for alias in node.names)
    return ours - {"agentloop"}, theirs


MODULES = sorted(p for p in PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_imports_only_from_its_layer_or_below(path: Path) -> None:
    top = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    layer = layer_of(top)
    if layer is None:
        assert top in ENTRY, f"{top} belongs to no layer; add it to tests/test_layers.py"
        return
    ours, theirs = imports(path)
    assert ours <= ALLOWED[layer], f"{path.name} ({layer}) imports {sorted(ours - ALLOWED[layer])}"
    assert not theirs & FORBIDDEN_THIRD_PARTY.get(layer, set()), sorted(theirs)
    if layer == "core":
        rank = CORE_RANKS[top]
        inside = top == "backends"  # a package: its modules may import each other
        upward = {m for m in ours if CORE_RANKS[m] >= rank and not (inside and m == top)}
        assert not upward, (
            f"{path.name} (rank {rank}) imports core modules of rank >= its own: {sorted(upward)}"
        )


def test_every_core_module_has_a_rank() -> None:
    modules = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in MODULES}
    unranked = {m for m in modules if layer_of(m) is None and m not in ENTRY}
    assert not unranked, f"modules in no layer (rank them in CORE_RANKS): {sorted(unranked)}"
