"""`tests.warm`: a command forked from a warm interpreter behaves as a cold `python` would,
as the tests that use it see it (exit codes, signals, descriptors, environment, kill)."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from . import warm

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="Linux only (os.pidfd_open)"),
    pytest.mark.skipif(bool(os.environ.get("AGENTLOOP_TEST_COLD")), reason="warm forks are off"),
]

SCRIPT = """
import json, os, sys, time
mode = sys.argv[1]
if mode == "where":
    print(json.dumps({
        "cwd": os.getcwd(), "argv": sys.argv, "path0": sys.path[0], "name": __name__,
        "key": os.environ.get("API_KEY"), "ttys": [f.isatty() for f in (sys.stdin, sys.stdout)],
    }))
elif mode == "echo":
    print(sys.stdin.read().upper())
elif mode == "exit":
    print("bye", file=sys.stderr)
    sys.exit(3)
elif mode == "raise":
    raise ValueError("boom")
elif mode == "interrupt":
    try:
        print("waiting", flush=True)
        time.sleep(60)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
elif mode == "sigint":
    import signal
    print(signal.getsignal(signal.SIGINT) == signal.SIG_IGN)
elif mode == "hang":
    print(os.getpid(), flush=True)
    time.sleep(60)
"""
ENV = {**os.environ, "WARM_TEST": "1"}  # a server of its own for this module
PRELOAD = ("json",)  # nothing slow: these tests check the mechanism, not the savings


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("warm") / "script.py"
    path.write_text(SCRIPT)
    return str(path)


def command(script: str, mode: str) -> list[str]:
    argv = warm.python(script, mode, env=ENV, preload=PRELOAD)
    assert argv[1:3] == ["-I", "-S"]  # served warm
    return argv


def test_the_fork_runs_the_script_with_the_callers_cwd_env_argv_and_descriptors(
    script: str, tmp_path: Path
) -> None:
    done = subprocess.run(
        command(script, "where"),
        env=ENV | {"API_KEY": "from-the-caller"},  # a CALL_TIME variable: passed through
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "cwd": str(tmp_path),
        "argv": [script, "where"],
        "path0": str(Path(script).parent),
        "name": "__main__",
        "key": "from-the-caller",
        "ttys": [False, False],
    }


def test_code_and_modules_run_as_main(tmp_path: Path) -> None:
    code = "import sys; print(sys.argv, __name__, repr(sys.path[0]))"
    done = subprocess.run(
        warm.python("-c", code, "x", env=ENV, preload=PRELOAD),
        env=ENV,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.stdout == "['-c', 'x'] __main__ ''\n", done.stderr
    (tmp_path / "hello.py").write_text("import sys; print(__name__, sys.argv[1:])")
    module = subprocess.run(
        warm.python("-m", "hello", "y", env=ENV, preload=PRELOAD),
        env=ENV,
        cwd=tmp_path,  # `-m` finds modules in the cwd
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert module.stdout == "__main__ ['y']\n", module.stderr


def test_stdin_exit_codes_and_tracebacks_are_the_commands(script: str) -> None:
    echo = subprocess.run(command(script, "echo"), env=ENV, input=b"hi", capture_output=True)
    assert (echo.returncode, echo.stdout) == (0, b"HI\n")
    exits = subprocess.run(command(script, "exit"), env=ENV, capture_output=True, text=True)
    assert (exits.returncode, exits.stderr) == (3, "bye\n")
    raises = subprocess.run(command(script, "raise"), env=ENV, capture_output=True, text=True)
    assert raises.returncode == 1 and raises.stderr.endswith("ValueError: boom\n")


def test_a_signal_reaches_the_fork(script: str) -> None:
    process = subprocess.Popen(
        command(script, "interrupt"), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout is not None
    assert process.stdout.readline() == b"waiting\n"
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert (process.returncode, err) == (130, b"interrupted\n")


def test_a_fork_killed_by_a_signal_ends_its_client_the_same_way(script: str) -> None:
    process = subprocess.Popen(command(script, "hang"), env=ENV, stdout=subprocess.PIPE)
    assert process.stdout is not None
    fork = int(process.stdout.readline())
    os.kill(fork, signal.SIGTERM)
    assert process.wait(30) == -signal.SIGTERM


def test_killing_the_client_kills_the_fork(script: str) -> None:
    process = subprocess.Popen(command(script, "hang"), env=ENV, stdout=subprocess.PIPE)
    assert process.stdout is not None
    fork = int(process.stdout.readline())
    fork_fd = os.pidfd_open(fork)
    try:
        process.kill()
        process.wait(30)
        assert select.select([fork_fd], [], [], 30)[0], "the fork outlived its client"
    finally:
        os.close(fork_fd)


def test_another_environment_or_python_options_run_cold(script: str) -> None:
    argv = warm.python(script, "exit", env=ENV, preload=PRELOAD)
    other = ENV | {"WARM_TEST": "2"}  # not the server's environment: the client execs python
    done = subprocess.run(argv, env=other, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (3, "bye\n"), done.stderr
    assert warm.python("-X", "importtime", script) == [sys.executable, "-X", "importtime", script]


def test_a_signal_the_caller_ignores_stays_ignored(script: str) -> None:
    """`pytest &` in a script ignores SIGINT; a cold child inherits that, so a fork does too."""

    def ignore_sigint() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    for preexec, ignored in ((None, "False"), (ignore_sigint, "True")):
        done = subprocess.run(
            command(script, "sigint"), env=ENV, capture_output=True, text=True, preexec_fn=preexec
        )
        assert done.stdout.strip() == ignored, done.stderr
