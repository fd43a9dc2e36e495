"""The declared public surface: every public module's `__all__` is sorted and lists exactly its
public names, public objects report their public module, and `import agentloop` stays light."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys
from types import ModuleType

import pytest

import agentloop

FACES = (
    "agentloop",
    "agentloop.asgi",
    "agentloop.backends",
    "agentloop.backends.ray",
    "agentloop.journal",
    "agentloop.mcp",
    "agentloop.serve",
    "agentloop.testing",
    "agentloop.web",
)
"""The public modules users import from (docs/architecture.md: a path without an underscore is
public; the internal packages' plain modules are reached through these faces)."""


def face(name: str) -> ModuleType:
    if name == "agentloop.backends.ray":
        pytest.importorskip("ray")
    if name in ("agentloop.asgi", "agentloop.serve", "agentloop.web"):
        pytest.importorskip("starlette")
    module = importlib.import_module(name)
    for exported in module.__all__:  # lazy names load here
        getattr(module, exported)
    return module


def public_names(module: ModuleType) -> set[str]:
    """Names a user sees: not underscored, not a submodule, and defined by this module (or,
    for `agentloop` itself, by agentloop), not imported from elsewhere."""
    names = set()
    for name, value in vars(module).items():
        if name.startswith("_") or inspect.ismodule(value):
            continue
        home = getattr(value, "__module__", None)
        if not (isinstance(value, type) or callable(value)) or home is None:
            continue  # constants and aliases are checked through __all__ alone
        if module.__name__ == "agentloop":
            ours = home.split(".")[0] == "agentloop"
        else:
            ours = home == module.__name__ or home.startswith(module.__name__ + ".")
        if ours:
            names.add(name)
    return names


def isort_key(name: str) -> tuple[int, str]:
    """The order ruff keeps `__all__` in: CONSTANTS, then Classes, then functions."""
    if name.isupper():
        return 0, name
    return (1 if name[0].isupper() else 2), name


@pytest.mark.parametrize("name", FACES)
def test_all_is_sorted_and_every_name_resolves(name: str) -> None:
    module = face(name)
    assert module.__all__ == sorted(module.__all__, key=isort_key)
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert not missing


@pytest.mark.parametrize("name", FACES)
def test_all_lists_exactly_the_public_names(name: str) -> None:
    module = face(name)
    assert public_names(module) - {"__version__"} <= set(module.__all__), (
        f"{name} has public names missing from __all__: "
        f"{sorted(public_names(module) - set(module.__all__))}"
    )


@pytest.mark.parametrize("name", FACES)
def test_public_objects_report_a_public_module(name: str) -> None:
    module = face(name)
    for exported in module.__all__:
        value = getattr(module, exported)
        if isinstance(value, type) or inspect.isfunction(value):
            home = value.__module__
            private = any(part.startswith("_") for part in home.split("."))
            assert not private and (home == "agentloop" or home.startswith(name)), (
                f"{name}.{exported} reports module {home!r}"
            )


def test_the_top_level_face_reports_agentloop() -> None:
    for name in agentloop.__all__:
        value = getattr(agentloop, name)
        if isinstance(value, type) or inspect.isfunction(value):
            assert value.__module__ == "agentloop", name
    assert repr(agentloop.TaskStatus) == "<enum 'TaskStatus'>"
    assert "agentloop.RunScope" in repr(agentloop.RunScope)


def test_every_public_class_of_a_plain_module_is_exported() -> None:
    """A module without an underscore in its path holds public names; each of its classes
    is exported by the face (or it would be unreachable by a public path)."""
    exported = set(agentloop.__all__)
    for info in pkgutil.walk_packages(agentloop.__path__, "agentloop."):
        parts = info.name.split(".")
        if any(p.startswith("_") for p in parts) or parts[1] in (
            "cli",
            "demo",
            "testing",
            "web",
            "serve",
            "asgi",
            "backends",
            "journal",
            "mcp",
        ):
            continue
        module = importlib.import_module(info.name)
        for name in getattr(module, "__all__", []):
            value = getattr(module, name)
            if isinstance(value, type) and not issubclass(value, BaseException | type(None)):
                assert name in exported, f"{info.name}.{name} is not re-exported"


def test_errors_share_one_base() -> None:
    for name in agentloop.__all__:
        obj = getattr(agentloop, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, agentloop.AgentloopError), name


def test_importing_the_core_does_not_import_smolagents_or_litellm() -> None:
    code = (
        "import sys, agentloop; "
        "print(any(m == 'smolagents' or m.startswith(('smolagents.', 'litellm')) "
        "for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
