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


@nox.session(python=PYTHON)
def ray(session: nox.Session) -> None:
    """The Ray backend on a local Ray instance (tests/backends, ~30 s with Ray's start).

    Opt-in in the default run (`AGENTLOOP_RAY=1`): Ray's start takes 4-14 s on 2 cores and its
    processes keep taking CPU after the tests that need them.
    """
    session.install("-e", ".[test,ray]")
    session.run(
        "pytest",
        "tests/backends",
        "-p",
        "no:cacheprovider",
        *session.posargs,
        env={**ENV, "AGENTLOOP_RAY": "1"},
    )


MANY_RUNS = "10000"
MANY_RUNS_DEADLINE_S = "120"


@nox.session(python=PYTHON)
def many_runs(session: nox.Session) -> None:
    """10,000 concurrent runs of one agent in one process (~1 min): a run waiting for its
    model holds no thread, so the cost of a run does not grow with the number of runs.

    Runs tests/reliability/test_many_runs.py alone with `AGENTLOOP_MANY_RUNS=10000` (a value
    already in the environment wins: `AGENTLOOP_MANY_RUNS=1000 nox -s many_runs`). The runs
    arrive over a second; each waits 1 s for its model twice, with an async tool napping 0.1 s
    in between. Checked: every run gets its own answer, no task or thread outlives the agent,
    nothing on the event loop stalls it more than 0.5 s (CPython's cyclic collections are
    measured and reported apart), the load never adds more than 200 threads; makespan, worst
    loop lag, longest collection, peak threads and RSS growth go into the reliability figures.
    The load runs in a process of its own, cut at 120 s (`AGENTLOOP_MANY_RUNS_DEADLINE`) and
    killed if it stops answering, so a failing engine fails within ~5 min at worst.
    """
    import os

    session.install("-e", ".[test]")
    session.run(
        "pytest",
        "tests/reliability/test_many_runs.py",
        "-p",
        "no:cacheprovider",
        *session.posargs,
        env={
            **ENV,
            "AGENTLOOP_MANY_RUNS": os.environ.get("AGENTLOOP_MANY_RUNS", MANY_RUNS),
            "AGENTLOOP_MANY_RUNS_DEADLINE": os.environ.get(
                "AGENTLOOP_MANY_RUNS_DEADLINE", MANY_RUNS_DEADLINE_S
            ),
        },
    )


PROVIDER_RUNS = "500"


@nox.session(python=PYTHON)
def provider_limits(session: nox.Session) -> None:
    """500 runs of one agent against a local provider stub that enforces a real rate limit
    (40 requests in any sliding second, 429 with `retry-after-ms` past it), the agent given
    `ModelLimits(requests_per_minute=2400)`: the same limit on a faster clock (~20 s).

    Runs tests/reliability/test_provider_limits.py with `AGENTLOOP_PROVIDER_RUNS=500` (a value
    already in the environment wins). Checked: every run answers (no call failed for good),
    the throughput the stub admitted is within 10% of its limit, no run waits much longer than
    the whole load takes (first come, first served); throughput, 429s and run times go into
    the reliability figures. The default suite runs the same test with 24 runs.
    """
    import os

    session.install("-e", ".[test]")
    session.run(
        "pytest",
        "tests/reliability/test_provider_limits.py",
        "-p",
        "no:cacheprovider",
        *session.posargs,
        env={
            **ENV,
            "AGENTLOOP_PROVIDER_RUNS": os.environ.get("AGENTLOOP_PROVIDER_RUNS", PROVIDER_RUNS),
        },
    )


PARKED_RUNS = "100"


@nox.session(python=PYTHON)
def parked(session: nox.Session) -> None:
    """Parked runs hold nothing: 100 journaled runs each wait only for an approval
    and park (`park_after=0.1`); the test checks that no controller thread, slot, scope or
    run is held for them, then a second process (same SQLite journal) reads their pending
    approvals, approves each and resumes it, and every run completes with its approved task's
    result, run in that process (~3 s).

    Runs tests/durability/test_parked_many.py with `AGENTLOOP_PARKED_RUNS=100` (a value
    already in the environment wins). The default suite runs the same test with 10 runs.
    """
    import os

    session.install("-e", ".[test]")
    session.run(
        "pytest",
        "tests/durability/test_parked_many.py",
        "-p",
        "no:cacheprovider",
        *session.posargs,
        env={**ENV, "AGENTLOOP_PARKED_RUNS": os.environ.get("AGENTLOOP_PARKED_RUNS", PARKED_RUNS)},
    )


BENCH_PEERS = (  # pinned: the versions docs/performance.md was measured with
    "smolagents==1.26.0",  # ToolCallingAgent and CodeAgent (also agentloop's base)
    "pydantic-ai-slim==2.68.0",  # Agent with a FunctionModel: no provider, no network
    "openai-agents==0.24.0",  # Agent with a fake Model, tracing disabled
    "matplotlib==3.11.2",  # the chart
)
BENCH_DURABLE = (  # pinned: the versions the durable side-by-side was measured with
    "langgraph==1.2.24",  # StateGraph + ToolNode, a scripted chat model
    "langgraph-checkpoint-sqlite==3.1.2",  # AsyncSqliteSaver
    "langchain-core==1.8.3",  # 1.8.4 needs langchain-protocol>=0.0.22: none installs here
    "pydantic-ai-slim[dbos]==2.68.0",  # DBOSAgent (same pydantic-ai as BENCH_PEERS)
    "dbos==3.4.0",  # SQLite system database, in-process
)

BENCH_SMOLAGENTS_MCP = (  # pinned: smolagents' MCP client, in a virtualenv of its own
    "smolagents[mcp]==1.26.0",  # MCPClient, through mcpadapt
    "mcpadapt==0.1.19",
    "mcp==1.30.0",  # mcpadapt imports names mcp 2.x removed (`streamablehttp_client`)
)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks, with the peers installed here only: ratios to floors measured in the same
    run, and docs/performance.png redrawn from the peers' results.

    `nox -s bench -- --only peers --quick` runs only the peers (W1-W5), 3 repeats;
    `nox -s bench -- --quick --only durable` only the durable runs side by side;
    `nox -s bench -- --only agui` the AG-UI encoding cost beside the native SSE frame;
    `nox -s bench -- --quick --only mcp` the MCP scenarios (smolagents' MCP client in a
    virtualenv of its own, made here: it needs mcp 1.x).
    """
    import os

    session.install("-e", ".[ray,mcp,serve,agui]", "httpx>=0.27", *BENCH_PEERS, *BENCH_DURABLE)
    # smolagents' MCP client (mcpadapt) needs mcp 1.x, agentloop's 2.x: its side of the MCP
    # scenario runs in a virtualenv of its own
    smolagents_mcp = os.path.join(session.create_tmp(), "smolagents-mcp")
    session.run("python", "-m", "venv", "--clear", smolagents_mcp)
    python = os.path.join(smolagents_mcp, "bin", "python")
    session.run(python, "-m", "pip", "install", "-q", *BENCH_SMOLAGENTS_MCP, external=True)
    chart = ["--chart", "docs/performance.png"]  # a `--chart` in the arguments wins
    env = {**ENV, "AGENTLOOP_BENCH_SMOLAGENTS_MCP_PYTHON": python}
    session.run("python", "-m", "bench", *chart, *session.posargs, env=env)


MCP_HEAVY_DEADLINE_S = "600"


@nox.session(python=PYTHON)
def mcp(session: nox.Session) -> None:
    """MCP servers written with the SDK, started by the tests, under load and killed (~1 min):
    tests/mcp with `AGENTLOOP_MCP_HEAVY=1`. 20 concurrent runs share one stdio server and one
    Streamable HTTP server (a uvicorn subprocess on 127.0.0.1) with 200 calls in flight; a
    stdio and an HTTP server SIGKILLed mid-call (the HTTP one restarted on its port) are
    reconnected; a cancelled call is cancelled in the server's tool; long calls as remote
    tasks (the tasks extension) over stdio and HTTP, and the agent SIGKILLed while one runs
    on a separate HTTP server, resumed by a second process that re-attaches (the tool runs
    once). An agent served over MCP by its entry point (`agentloop mcp`, a stdio subprocess)
    answers, reports progress, is cancelled and runs MCP tasks, and examples/mcp_serve_app.py
    runs (tests/mcp/test_serving_stdio.py). Every test is bounded (pytest-timeout), and the
    whole run is cut at 10 min."""
    session.install("-e", ".[test,mcp,mcp-serve]")
    session.run(
        "timeout",
        MCP_HEAVY_DEADLINE_S,
        "pytest",
        "tests/mcp",
        "-p",
        "no:cacheprovider",
        *session.posargs,
        env={**ENV, "AGENTLOOP_MCP_HEAVY": "1"},
        external=True,
    )


PHOENIX = (  # pinned: the versions tests/phoenix was written against
    "arize-phoenix==20.26.1",
    "arize-phoenix-otel==0.17.2",
    "arize-phoenix-client==3.5.0",
    "openinference-instrumentation-smolagents==0.1.43",
)
PHOENIX_START_S = 180  # it takes ~40 s here (migrations, UI assets); more on a busy CI machine


@nox.session(python=PYTHON)
def phoenix(session: nox.Session) -> None:
    """docs/tracing.md's Phoenix snippet against a real Phoenix server on 127.0.0.1 (~2 min).

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
    """The live web view and the service's console in a real browser: headless Chromium from
    Debian's packages, driven by Playwright's Python API, against `agentloop demo --web` and
    `agentloop.serve.create_app` on 127.0.0.1 (~40 s, plus the installs).

    Installs Chromium with apt-get when /usr/bin/chromium is missing (as root, or with sudo),
    never with `playwright install` (that downloads browsers). The web view's screenshot goes to
    `AGENTLOOP_BROWSER_SCREENSHOT` when set (`docs/web-view.png` was taken this way), the
    console's to the folder `AGENTLOOP_BROWSER_SCREENSHOT_DIR` names (`docs/console-*.png`).
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


POSTGRES_GLOB = "/usr/lib/postgresql/*/bin/initdb"  # Debian's layout, one dir per major version
POSTGRES_START_S = "60"
POSTGRES_COMMON_D = "/etc/postgresql-common/createcluster.d"
POSTGRES_ALSO = (  # the SIGKILL crash tests, on both journals
    "tests/durability/test_crash.py",
    "tests/serve/test_replicas.py",
)


@nox.session(python=PYTHON)
def postgres(session: nox.Session) -> None:
    """The journal against a real PostgreSQL server on 127.0.0.1 (~30 s, plus the installs).

    Installs Debian's `postgresql` with apt-get when no /usr/lib/postgresql/*/bin/initdb exists
    (as root, or with sudo), telling postgresql-common first not to create (nor start) its
    `main` cluster. Then initdb's a throwaway cluster in a temporary
    directory, owned by and run as a non-root user (PostgreSQL refuses root: `postgres` when
    the package made it, else `nobody`), with a random password, listening on a free port of
    127.0.0.1 only (its unix socket in the same directory); creates a database; runs
    tests/journal, tests/postgres and the crash test with `AGENTLOOP_POSTGRES_DSN` set (a
    `postgresql://` URL); and stops the server and deletes the directory, whatever happened.
    """
    import glob
    import os
    import pwd
    import secrets
    import shlex
    import shutil
    import socket
    import subprocess
    import tempfile

    def bindir() -> str | None:
        found = glob.glob(POSTGRES_GLOB)
        found.sort(key=lambda path: int(path.split(os.sep)[-3]))  # .../<major>/bin/initdb
        return os.path.dirname(found[-1]) if found else None

    root = os.geteuid() == 0
    if bindir() is None:
        sudo = [] if root or not shutil.which("sudo") else ["sudo"]
        # the package would create (and on a machine with systemd, start) a `main` cluster on
        # port 5432; the tests need none, so tell postgresql-common not to make one
        no_cluster = (
            f"mkdir -p {POSTGRES_COMMON_D} && [ -e {POSTGRES_COMMON_D}/agentloop-nox.conf ] "
            f"|| echo 'create_main_cluster = off' > {POSTGRES_COMMON_D}/agentloop-nox.conf"
        )
        session.run(*sudo, "sh", "-c", no_cluster, external=True)
        apt = [*sudo, "env", "DEBIAN_FRONTEND=noninteractive", "timeout", APT_TIMEOUT_S]
        session.run(*apt, "apt-get", "update", external=True)
        session.run(
            *apt, "apt-get", "install", "-y", "--no-install-recommends", "postgresql",
            external=True,
        )  # fmt: skip
    pg_bin = bindir()
    if pg_bin is None:
        session.error(f"no PostgreSQL server found ({POSTGRES_GLOB}) after installing it")
    session.install("-e", ".[test,postgres]")

    if root:  # run the server as an unprivileged user
        names = {entry.pw_name for entry in pwd.getpwall()}
        user = "postgres" if "postgres" in names else "nobody"
        as_user = ["runuser", "-u", user, "--"]
    else:
        user, as_user = pwd.getpwuid(os.geteuid()).pw_name, []

    def server(*args: str, timeout: float = 120) -> None:
        """Run a server tool as the server's user, in its directory (bounded in time)."""
        command = [*as_user, *args]
        session.log(" ".join(command))
        done = subprocess.run(
            command, cwd=workdir, capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            session.error(f"{args[0]} failed ({done.returncode}):\n{done.stdout}{done.stderr}")

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    password = secrets.token_hex(16)
    workdir = tempfile.mkdtemp(prefix="agentloop-pg-")
    data, log = os.path.join(workdir, "data"), os.path.join(workdir, "server.log")
    started = passed = False
    try:
        with open(os.path.join(workdir, "pwfile"), "w") as pwfile:
            pwfile.write(password + "\n")
        if root:
            shutil.chown(workdir, user=user)
            shutil.chown(os.path.join(workdir, "pwfile"), user=user)
        os.chmod(workdir, 0o700)
        server(
            os.path.join(pg_bin, "initdb"), "-D", data, "-U", "agentloop",
            "--pwfile", os.path.join(workdir, "pwfile"), "--auth", "scram-sha-256",
            "-E", "UTF8", "--locale", "C", "--no-sync",
        )  # fmt: skip
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {shlex.quote(workdir)}"
        server(
            os.path.join(pg_bin, "pg_ctl"), "-D", data, "-l", log, "-o", options,
            "-w", "-t", POSTGRES_START_S, "start",
        )  # fmt: skip
        started = True
        session.run(
            os.path.join(pg_bin, "createdb"), "-h", "127.0.0.1", "-p", str(port),
            "-U", "agentloop", "agentloop_test",
            external=True, env={"PGPASSWORD": password},
        )  # fmt: skip
        # a URL: `create_async_agent(journal=...)` and `agentloop runs --journal` take one
        dsn = f"postgresql://agentloop:{password}@127.0.0.1:{port}/agentloop_test"
        session.run(
            "pytest",
            "tests/journal",
            "tests/postgres",
            *[path for path in POSTGRES_ALSO if os.path.exists(path)],
            "-q",
            "-p",
            "no:cacheprovider",
            *session.posargs,
            env={**ENV, "AGENTLOOP_POSTGRES_DSN": dsn},
        )  # each test is bounded by pytest-timeout (pyproject.toml)
        passed = True
    finally:
        if started:
            pg_ctl = os.path.join(pg_bin, "pg_ctl")
            stop = [*as_user, pg_ctl, "-D", data, "-m", "fast", "-w", "-t", "30", "stop"]
            if subprocess.run(stop, cwd=workdir, capture_output=True, timeout=60).returncode:
                kill = [*as_user, pg_ctl, "-D", data, "-m", "immediate", "-w", "stop"]
                subprocess.run(kill, cwd=workdir, capture_output=True, timeout=60)
            if not passed:
                with open(log) as text:
                    session.log(f"server log (last lines):\n{text.read()[-4000:]}")
        shutil.rmtree(workdir, ignore_errors=True)


@nox.session(python=PYTHON)
def a2a(session: nox.Session) -> None:
    """A2A between real services on 127.0.0.1 (~30 s): tests/serve/test_a2a*.py with
    `AGENTLOOP_A2A_HEAVY=1`, including the crash test that SIGKILLs a caller mid remote task
    and resumes it in a new process (cold imports: seconds each)."""
    session.install("-e", ".[test,serve,a2a]")
    session.run(
        "timeout",
        "600",
        "pytest",
        "tests/serve/test_a2a.py",
        "tests/serve/test_a2a_crash.py",
        "-p",
        "no:cacheprovider",
        *session.posargs,
        env={**ENV, "AGENTLOOP_A2A_HEAVY": "1"},
    )
