"""Library users do not wait for LiteLLM's network cost-map fetch (issue 23, point 7).

Importing litellm fetches its cost map from GitHub unless `LITELLM_LOCAL_MODEL_COST_MAP` is
true; `import agentloop` sets that default (keeping a value the application set), and litellm
is imported later, when the user builds a `LiteLLMModel`. Two facts make that true, each
checked fast: importing agentloop sets the variable (a fresh interpreter, as a user's script
starts), and this litellm, with the variable set, reads its installed copy without touching
the network (every socket is banned; the same call without the variable does try to fetch).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import litellm  # here, not in a test: a cold import takes seconds
import pytest
from litellm.litellm_core_utils.get_model_cost_map import get_model_cost_map

SRC = Path(__file__).resolve().parents[2] / "src"
VARIABLE = "LITELLM_LOCAL_MODEL_COST_MAP"


def after_import(value: str | None) -> str:
    """The variable, as a fresh interpreter sees it after `import agentloop`."""
    env = {k: v for k, v in os.environ.items() if k != VARIABLE}
    env["PYTHONPATH"] = str(SRC)
    if value is not None:
        env[VARIABLE] = value
    code = f"import os, agentloop; print(os.environ.get({VARIABLE!r}))"
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_importing_agentloop_defaults_to_the_installed_cost_map() -> None:
    assert after_import(None) == "True"


def test_a_value_the_application_set_is_kept() -> None:
    assert after_import("False") == "False"


class Banned:
    """Every connection attempt, refused and recorded."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.attempts: list[Any] = []
        for name in ("getaddrinfo", "create_connection"):
            monkeypatch.setattr(socket, name, self.refuse)
        monkeypatch.setattr(socket.socket, "connect", lambda _, *a: self.refuse(*a))

    def refuse(self, *args: Any, **kwargs: Any) -> Any:
        self.attempts.append(args[:2])
        raise OSError("no network in this test")


def test_with_the_variable_litellm_reads_its_map_without_the_network(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    banned = Banned(monkeypatch)
    monkeypatch.setenv(VARIABLE, "True")

    cost_map = get_model_cost_map(url=litellm.model_cost_map_url, max_attempts=1)

    assert banned.attempts == []
    assert cost_map["gpt-4o-mini"]["input_cost_per_token"] > 0


def test_without_it_litellm_would_fetch_the_map(monkeypatch: pytest.MonkeyPatch) -> None:
    banned = Banned(monkeypatch)  # what makes the test above able to fail
    monkeypatch.delenv(VARIABLE, raising=False)
    monkeypatch.delenv("LITELLM_OFFLINE_MODE", raising=False)

    cost_map = get_model_cost_map(url=litellm.model_cost_map_url, max_attempts=1)

    assert banned.attempts  # it tried, and fell back to the installed copy
    assert "gpt-4o-mini" in cost_map
