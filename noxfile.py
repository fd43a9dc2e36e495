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
def stress(session: nox.Session) -> None:
    """The long reliability suite: load, faults and hostile input at full size (< 10 min)."""
    session.install("-e", ".[test]")
    session.run(
        "pytest",
        "tests/reliability",
        "-p",
        "no:cacheprovider",
        *session.posargs,
        env={**ENV, "AGENTLOOP_STRESS": "1"},
    )


BENCH_PEERS = (  # pinned: the versions docs/performance.md was measured with
    "smolagents==1.26.0",  # ToolCallingAgent and CodeAgent (also agentloop's base)
    "pydantic-ai-slim==2.68.0",  # Agent with a FunctionModel: no provider, no network
    "openai-agents==0.24.0",  # Agent with a fake Model, tracing disabled
    "matplotlib==3.11.2",  # the chart
)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks, with the peers installed here only: ratios to floors measured in the same
    run, and docs/performance.png redrawn from the peers' results.

    `nox -s bench -- --only peers --quick` runs only the peers (W1-W5), 3 repeats.
    """
    session.install("-e", ".[ray]", *BENCH_PEERS)
    chart = ["--chart", "docs/performance.png"]  # a `--chart` in the arguments wins
    session.run("python", "-m", "bench", *chart, *session.posargs, env=ENV)


PHOENIX = (  # pinned: the versions tests/phoenix was written against
    "arize-phoenix==20.26.1",
    "arize-phoenix-otel==0.17.2",
    "arize-phoenix-client==3.5.0",
    "openinference-instrumentation-smolagents==0.1.43",
)
PHOENIX_START_S = 180  # it takes ~40 s here (migrations, UI assets); more on a busy CI machine


@nox.session(python=PYTHON)
def phoenix(session: nox.Session) -> None:
    """The seed's Phoenix usage against a real Phoenix server on 127.0.0.1 (~2 min).

    Starts `phoenix serve` with a temporary working dir on free ports, runs tests/phoenix with
    `AGENTLOOP_PHOENIX_URL` set (the tests read the spans back with Phoenix's client), and stops
    the server, whatever happened.
    """
    import os
    import socket
    import subprocess
    import tempfile
    import time
    import urllib.request

    session.install("-e", ".[test]", *PHOENIX)

    def free_port() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    port, grpc_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="phoenix-") as workdir:
        env = {
            **os.environ,
            "PHOENIX_WORKING_DIR": workdir,
            "PHOENIX_HOST": "127.0.0.1",
            "PHOENIX_PORT": str(port),
            "PHOENIX_GRPC_PORT": str(grpc_port),
            "PHOENIX_TELEMETRY_ENABLED": "false",
        }
        log = open(os.path.join(workdir, "server.log"), "w")  # noqa: SIM115 - closed below
        server = subprocess.Popen(
            [os.path.join(session.bin, "phoenix"), "serve"], env=env, stdout=log, stderr=log
        )
        try:
            deadline = time.monotonic() + PHOENIX_START_S
            while True:  # a readiness probe of a child process, not a test's synchronisation
                if server.poll() is not None:
                    session.error(f"phoenix exited with {server.returncode}: see its log above")
                try:
                    with urllib.request.urlopen(f"{url}/healthz", timeout=2) as reply:
                        if reply.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    session.error(f"phoenix did not answer on {url} within {PHOENIX_START_S} s")
                time.sleep(0.5)
            session.run(
                "pytest",
                "tests/phoenix",
                "-p",
                "no:cacheprovider",
                *session.posargs,
                env={**ENV, "AGENTLOOP_PHOENIX_URL": url},
            )
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            log.close()
            if server.returncode not in (0, -15):
                with open(os.path.join(workdir, "server.log")) as text:
                    session.log(text.read()[-4000:])


PLAYWRIGHT = "playwright==1.65.2"  # the Python API only: it drives Debian's Chromium
CHROMIUM = "/usr/bin/chromium"
APT_TIMEOUT_S = "600"


@nox.session(python=PYTHON)
def browser(session: nox.Session) -> None:
    """The live web view in a real browser: headless Chromium from Debian's packages, driven
    by Playwright's Python API, against `agentloop demo --web` on 127.0.0.1 (~15 s, plus the
    installs).

    Installs Chromium with apt-get when /usr/bin/chromium is missing (as root, or with sudo),
    never with `playwright install` (that downloads browsers). The screenshot goes to
    `AGENTLOOP_BROWSER_SCREENSHOT` when set (`docs/web-view.png` was taken this way).
    """
    import os
    import shutil

    if not os.path.exists(CHROMIUM):
        sudo = [] if os.geteuid() == 0 or not shutil.which("sudo") else ["sudo"]
        apt = [*sudo, "timeout", APT_TIMEOUT_S, "apt-get"]
        session.run(*apt, "update", external=True)
        session.run(*apt, "install", "-y", "--no-install-recommends", "chromium", external=True)
    session.install("-e", ".[test,web]", PLAYWRIGHT)
    session.run(
        "pytest",
        "tests/browser",
        "-p",
        "no:cacheprovider",
        "--timeout",
        "120",
        *session.posargs,
        env={**ENV, "AGENTLOOP_BROWSER": "1", "AGENTLOOP_CHROMIUM": CHROMIUM},
    )
