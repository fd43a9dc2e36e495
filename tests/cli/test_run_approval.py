"""`agentloop run --needs-approval NAME [--approve]`: a real subprocess, real litellm, the local
stub; the answer typed on stdin once the question is on stderr.

The processes are forks of a warm interpreter (`tests.warm`): litellm is imported once, not
once per test (3-7 s each on 2 cores).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest

from .. import warm
from .llm_stub import LLMStub
from .test_run_command import MODEL, REPO, TASK, _environment, assert_one_clean_error, cli

pytestmark = pytest.mark.timeout(60)

ASK = (
    "Thought: the double needs approval; the title does not, and need not wait for it.\n<code>\n"
    'd = submit_task("tool", "slow_double", {"n": 21})\n'
    't = submit_task("tool", "fetch_title", {"url": "https://example.com"})\n'
    "wait_for_tasks([d, t])\n"
    "print(get_task_results([d, t]))\n"
    "</code>"
)
FINISH = "Thought: done.\n<code>\nfinal_answer(str(get_task_results([d, t])))\n</code>"
QUESTION = "approve `slow_double` (task slow_double_1) with n=21? [y/N] "


def agentloop(*args: str, env: dict[str, str]) -> list[str]:
    """`python -m agentloop ARGS`, forked from a warm interpreter started with `env`."""
    return warm.python("-m", "agentloop", *args, env=env)


def start(stub: LLMStub, *extra: str) -> subprocess.Popen[bytes]:
    env = _environment({"API_KEY": "sk-test", "BASE_URL": stub.base_url})
    return subprocess.Popen(
        agentloop(
            "run", TASK, "--model", MODEL, "--tools", "tests.cli.stub_tools:TOOLS", "--no-live",
            "--needs-approval", "slow_double", *extra, env=env,
        ),
        env=env,
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip


def read_until(process: subprocess.Popen[bytes], needle: str) -> str:
    """stderr up to and including `needle` (the question has no newline: read bytes)."""
    assert process.stderr is not None
    seen = b""
    while needle.encode() not in seen:
        chunk = os.read(process.stderr.fileno(), 4096)
        assert chunk, f"stderr ended before {needle!r}: {seen.decode()}"
        seen += chunk
    return seen.decode()


def answer(stub: LLMStub, typed: str, *, after: str = "[y/N] ") -> tuple[int, str, str]:
    """Run, wait for the question (and for `after` on stderr), type `typed`, then close stdin."""
    stub.add_replies(ASK, FINISH)
    process = start(stub, "--approve")
    try:
        before = read_until(process, after)
        out, rest = process.communicate(typed.encode(), timeout=40)
    finally:
        if process.poll() is None:
            process.kill()
    return process.returncode, out.decode(), before + rest.decode()


def test_y_on_the_terminal_approves_and_the_task_runs(stub: LLMStub) -> None:
    # the question is up and the other task completes before anyone answers: the run goes on
    code, out, err = answer(stub, "y\n", after="completed fetch_title_2")

    assert code == 0, err
    before_question, after = err.split(QUESTION)
    assert "approval slow_double_1: slow_double(n=21) awaits a decision" in before_question
    assert err.index("completed fetch_title_2") < err.index("approved slow_double_1")
    assert "approved slow_double_1 (approved on the terminal)" in after
    assert "completed slow_double_1" in after
    assert out.strip() == "{'slow_double_1': 42, 'fetch_title_2': 'title of https://example.com'}"


def test_n_on_the_terminal_rejects_and_the_model_reads_why(stub: LLMStub) -> None:
    code, out, err = answer(stub, "n\n")

    assert code == 0, err
    assert "rejected slow_double_1 (rejected on the terminal)" in err
    assert "failed slow_double_1 (ApprovalRejectedError: rejected: rejected on the terminal)" in err
    observation = stub.requests[1].text("user")  # what the model read after step 1
    assert "rejected: rejected on the terminal" in observation
    assert "42" not in out


def test_end_of_input_rejects(stub: LLMStub) -> None:
    code, _, err = answer(stub, "")  # stdin closed unanswered

    assert code == 0, err
    assert "rejected slow_double_1 (rejected on the terminal (no answer: end of input))" in err
    assert "end of input" in stub.requests[1].text("user")


def test_without_approve_the_call_is_rejected_at_once_with_a_reason(stub: LLMStub) -> None:
    stub.add_replies(ASK, FINISH)
    env = _environment({"API_KEY": "sk-test", "BASE_URL": stub.base_url})
    result = subprocess.run(
        agentloop(
            "run", TASK, "--model", MODEL, "--tools", "tests.cli.stub_tools:TOOLS", "--no-live",
            "--needs-approval", "slow_double", env=env,
        ),
        env=env, cwd=REPO, capture_output=True, text=True, timeout=50, check=False,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert "[y/N]" not in result.stderr
    assert "rejected slow_double_1 (needs a person's approval, and no one was asked" in (
        result.stderr
    )
    assert "run with --approve to be asked" in stub.requests[1].text("user")
    assert "completed fetch_title_2" in result.stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--needs-approval", "slow_doubel"], "Did you mean `slow_double`?"),
        (["--approve"], "--approve: name the calls to ask about with --needs-approval NAME"),
    ],
)
def test_bad_approval_options_are_usage_errors(extra: list[str], message: str) -> None:
    result = cli(
        "run", "x", "--model", MODEL, "--tools", "tests.cli.stub_tools:TOOLS", *extra,
        env={"API_KEY": "sk-test"},
    )  # fmt: skip

    assert result.returncode == 2
    assert_one_clean_error(result, message)


@pytest.fixture
def stub() -> Iterator[LLMStub]:
    with LLMStub() as server:
        yield server


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX pseudo-terminal")
def test_on_a_terminal_the_live_view_pauses_for_the_question(stub: LLMStub) -> None:
    """stdin and stderr on a pseudo-terminal: the live table, the question, `y`, the table again."""
    import pty

    stub.add_replies(ASK, FINISH)
    leader, follower = pty.openpty()
    env = _environment(
        {"API_KEY": "sk-test", "BASE_URL": stub.base_url, "COLUMNS": "120", "TERM": "xterm"}
    )
    process = subprocess.Popen(
        agentloop(
            "run", TASK, "--model", MODEL, "--tools", "tests.cli.stub_tools:TOOLS",
            "--needs-approval", "slow_double", "--approve", env=env,
        ),
        env=env,
        cwd=REPO,
        stdin=follower,
        stdout=subprocess.PIPE,
        stderr=follower,
    )  # fmt: skip
    os.close(follower)
    seen = b""
    try:
        while b"[y/N] " not in seen:
            chunk = os.read(leader, 4096)
            assert chunk, seen.decode(errors="replace")
            seen += chunk
        os.write(leader, b"y\n")
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closed: the process has ended
                break
            if not chunk:
                break
            seen += chunk
        out, _ = process.communicate(timeout=40)
    finally:
        os.close(leader)
        if process.poll() is None:
            process.kill()
    screen = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", seen.decode(errors="replace"))
    assert process.returncode == 0, screen
    before, after = screen.split("approve `slow_double` (task slow_double_1) with n=21? [y/N] ")
    assert "awaiting approval" in before
    assert "│ slow_double_1 │ slow_double │ completed │" in after
    assert out.decode().strip().startswith("{'slow_double_1': 42")
