"""The sessions CI runs, runnable locally with `nox -s NAME` (each in its own virtualenv)."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.default_venv_backend = "venv"

PYTHON = "3.11"
ENV = {"LITELLM_LOCAL_MODEL_COST_MAP": "True"}


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The test suite (fast, offline)."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs, env=ENV)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting check."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package."""
    session.install("-e", ".[dev]")
    session.run("mypy", env=ENV)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks; they print ratios against floors measured in the same run."""
    session.install("-e", ".")
    session.run("python", "-m", "bench", *session.posargs, env=ENV)
