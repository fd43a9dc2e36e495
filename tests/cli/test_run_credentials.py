"""`agentloop run` finds its key where LiteLLM users keep it (issue 23, point 7): `API_KEY`,
else LiteLLM's own variable for the provider (`OPENAI_API_KEY`, ...), else none at all for a
local server given with `--base-url` / `BASE_URL`; and says which variable to set otherwise.

Driven in this process through the command's entry point (`agentloop.cli.main`), against the
local OpenAI-compatible stub: the key the client really sent is the request's header.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import litellm  # noqa: F401 - here, not in a test: a cold import takes seconds
import pytest

from agentloop.cli import main
from agentloop.cli._credentials import KEYLESS

from .llm_stub import LLMStub

MODEL = "openai/gpt-4o-mini"
ANSWER = "Thought: done.\n<code>\nfinal_answer('hello')\n</code>"
VARIABLES = (
    "API_KEY",
    "BASE_URL",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_API_BASE",
    "ANTHROPIC_API_KEY",
)


@pytest.fixture
def stub() -> Iterator[LLMStub]:
    with LLMStub([ANSWER]) as server:
        yield server


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No key anywhere, no env file, and 127.0.0.1 reached without a proxy."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.chdir(tmp_path)


def run(*options: str, model: str = MODEL) -> int:
    return main(["run", "say hello", "--model", model, "--no-live", *options])


def sent_key(stub: LLMStub) -> str:
    (request,) = stub.requests
    return request.headers["authorization"].removeprefix("Bearer ")


def test_the_providers_own_variable_is_used(
    stub: LLMStub, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-openai-variable")

    assert run("--base-url", stub.base_url) == 0

    printed = capsys.readouterr()
    assert printed.out.strip() == "hello"
    assert sent_key(stub) == "sk-from-openai-variable"
    # the summary says what the run spent, priced from LiteLLM's map for gpt-4o-mini
    assert re.search(r"done in .*: 1 controller steps, 0 tasks, \d+ tokens, \$0\.\d+", printed.err)


def test_api_key_wins_over_the_providers_variable(
    stub: LLMStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-openai-variable")
    monkeypatch.setenv("API_KEY", "sk-from-api-key")
    monkeypatch.setenv("BASE_URL", stub.base_url)

    assert run() == 0

    assert sent_key(stub) == "sk-from-api-key"


@pytest.mark.parametrize("where", ["--base-url", "BASE_URL"])
def test_a_local_server_needs_no_key(
    stub: LLMStub,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    where: str,
) -> None:
    if where == "BASE_URL":
        monkeypatch.setenv("BASE_URL", stub.base_url)
        options: tuple[str, ...] = ()
    else:
        options = ("--base-url", stub.base_url)

    assert run(*options) == 0

    assert capsys.readouterr().out.strip() == "hello"
    assert sent_key(stub) == KEYLESS  # the OpenAI client needs one; the server ignores it


@pytest.mark.parametrize(
    ("model", "variable"),
    [(MODEL, "OPENAI_API_KEY"), ("anthropic/claude-3-5-haiku-latest", "ANTHROPIC_API_KEY")],
)
def test_no_key_and_no_endpoint_is_a_usage_error_naming_the_variable(
    capsys: pytest.CaptureFixture[str], model: str, variable: str
) -> None:
    assert run(model=model) == 2

    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1, errors
    assert f"no API key for --model {model!r}: LiteLLM looks for {variable}" in errors[0]
    assert "API_KEY" in errors[0] and ".env" in errors[0] and "--base-url" in errors[0]
