"""The declared public surface: `__all__` is sorted, complete, and every name resolves."""

from __future__ import annotations

import importlib
import subprocess
import sys

import agentloop


def test_all_is_sorted_and_every_name_resolves() -> None:
    assert agentloop.__all__ == sorted(agentloop.__all__)
    for name in agentloop.__all__:
        assert hasattr(agentloop, name), name


def test_every_public_class_is_exported() -> None:
    exported = set(agentloop.__all__)
    for module_name in (
        "errors",
        "tasks",
        "registry",
        "limits",
        "scope",
        "agent",
        "session",
        "tools",
    ):
        module = importlib.import_module(f"agentloop.{module_name}")
        for name in getattr(module, "__all__", []):
            if name[0].isupper() and not name.isupper():
                assert name in exported, f"{module_name}.{name} is not re-exported"


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
