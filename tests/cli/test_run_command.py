"""`agentloop run`, driven as a user drives it: a subprocess, real litellm, a local HTTP stub.

The stub (`llm_stub.LLMStub`) speaks OpenAI's chat-completions protocol on 127.0.0.1, so every
request goes through litellm and the openai client for real: headers, JSON, status codes and
retries. Nothing here needs a network or an API key.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agentloop.cli.run_cmd import MODEL_RETRIES

from .. import warm
from .importtime import first_line_before_heavy_imports
from .llm_stub import LLMStub, RecordedRequest

REPO = Path(__file__).resolve().parents[2]
PYTHONPATH = os.pathsep.join([str(REPO / "src"), str(REPO)])
"""This checkout's package and its `tests.cli.stub_tools`, whatever is installed."""
MODEL = "openai/gpt-4o-mini"
TASK = "Double 0, 1 and 2, and fetch the title of https://example.com."
FAN_OUT = (
    "Thought: the four calls are independent, so I start them all, then wait once.\n<code>\n"
    'ids = [submit_task("tool", "slow_double", {"n": i}) for i in range(3)]\n'
    'title = submit_task("tool", "fetch_title", {"url": "https://example.com"})\n'
    "wait_for_tasks(ids + [title])\n"
    "results = get_task_results(ids + [title])\n"
    "print(results)\n"
    "</code>"
)
FINISH = (
    "Thought: all done.\n<code>\n"
    'final_answer(f"doubled={sorted(results[i] for i in ids)} title={results[title]}")\n'
    "</code>"
)
ANSWER = "doubled=[0, 2, 4] title=title of https://example.com"
ONE_STEP = (
    "Thought: fan out\n<code>\n"
    'ids = [submit_task("tool", "slow_double", {"n": i}) for i in range(3)]\n'
    "wait_for_tasks(ids)\n"
    "final_answer(sorted(get_task_results(ids).values()))\n"
    "</code>"
)
_SCRUBBED = ("API_KEY", "BASE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_BASE")


def _environment(env: dict[str, str] | None) -> dict[str, str]:
    """A clean environment plus `env`."""
    base = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    base |= {
        "PYTHONPATH": PYTHONPATH,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    return base | (env or {})


def cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path = REPO
) -> subprocess.CompletedProcess[str]:
    """Run `python -m agentloop ARGS` with a clean environment plus `env` (forked from a warm
    interpreter: `tests.warm`)."""
    environment = _environment(env)
    return subprocess.run(
        warm.python("-m", "agentloop", *args, env=environment),
        env=environment,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )


def popen_cli(
    *args: str, env: dict[str, str] | None = None, python: tuple[str, ...] = ()
) -> subprocess.Popen[str]:
    """Start `python [PYTHON_OPTIONS] -m agentloop ARGS`, its output piped, as `cli` would."""
    environment = _environment(env)
    return subprocess.Popen(
        warm.python(*python, "-m", "agentloop", *args, env=environment),  # options: cold
        env=environment,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_task(stub: LLMStub, *extra: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {"API_KEY": "sk-test", "BASE_URL": stub.base_url}
    return cli(
        "run", TASK, "--model", MODEL, "--tools", "tests.cli.stub_tools:TOOLS", "--no-live",
        *extra, env=env, cwd=cwd,
    )  # fmt: skip


@pytest.fixture
def stub() -> Iterator[LLMStub]:
    with LLMStub() as server:
        yield server


def assert_one_clean_error(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    """stderr holds one `agentloop run: error:` line containing every needle, no traceback."""
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


@dataclass(frozen=True)
class HappyRun:
    result: subprocess.CompletedProcess[str]
    requests: list[RecordedRequest]
    trace: Path


@pytest.fixture(scope="module")
def happy_run(tmp_path_factory: pytest.TempPathFactory) -> HappyRun:
    """One two-step run with `--trace`, shared by the tests that read its outputs."""
    trace = tmp_path_factory.mktemp("trace") / "out.json"
    with LLMStub([FAN_OUT, FINISH]) as stub:
        result = run_task(stub, "--trace", str(trace))
    return HappyRun(result, stub.requests, trace)


@pytest.mark.timeout(60)
def test_a_run_answers_through_the_litellm_client(happy_run: HappyRun) -> None:
    result = happy_run.result

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ANSWER
    assert "completed slow_double_3" in result.stderr  # the plain view, on stderr
    first, second = happy_run.requests
    assert first.path == "/v1/chat/completions"
    assert first.headers["authorization"] == "Bearer sk-test"
    assert first.body["model"] == "gpt-4o-mini"
    assert TASK in first.text("user")
    system = first.text("system")
    assert "## Running work in parallel" in system
    assert "slow_double(n: integer)" in system and "fetch_title(url: string)" in system
    assert "'slow_double_3': 4, 'fetch_title_4': 'title of" in second.text("user")  # step 1


@pytest.mark.timeout(60)
def test_b_a_429_is_retried_by_the_client(stub: LLMStub) -> None:
    stub.fail_first(1, 429)
    stub.add_replies(ONE_STEP)

    result = run_task(stub)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[0, 2, 4]"
    assert [r.status for r in stub.requests] == [429, 200]
    assert stub.requests[0].body == stub.requests[1].body


@pytest.mark.timeout(60)
def test_c_a_persistent_500_ends_the_run_with_one_clear_line(stub: LLMStub) -> None:
    stub.fail_first(10, 500)

    result = run_task(stub)

    assert result.returncode == 1
    assert result.stdout == ""
    assert_one_clean_error(
        result,
        "agentloop run: error: model call failed: HTTP 500",
        stub.base_url,
        "litellm.InternalServerError",
        f"gave up after {MODEL_RETRIES} retries",
    )
    assert [r.status for r in stub.requests] == [500] * (MODEL_RETRIES + 1)


@pytest.mark.parametrize(
    ("option", "entry", "message"),
    [
        ("--tools", "nocolon", "expected MODULE:ATTR"),
        ("--tools", "no_such_module:x", "no module named `no_such_module`"),
        ("--tools", "tests.cli.stub_tools:missing", "has no attribute `missing`"),
        ("--tools", "tests.cli.stub_tools:TOOL", "Did you mean `TOOLS`?"),
        ("--tools", "tests.cli.stub_tools:NOT_A_TOOL", "expected a tool"),
        ("--managed", "tests.cli.stub_tools:slow_double", "expected an agent"),
    ],
)
def test_d_a_bad_target_path_is_a_usage_error(option: str, entry: str, message: str) -> None:
    result = cli("run", "x", "--model", MODEL, option, entry, env={"API_KEY": "sk-test"})

    assert result.returncode == 2
    assert_one_clean_error(result, f"{option} {entry!r}", message)


# A missing key (no API_KEY, no provider variable, no local endpoint): test_run_credentials.py


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("environment", "expected_key"),
    [({}, "sk-from-dotenv"), ({"API_KEY": "sk-from-env"}, "sk-from-env")],
    ids=["dotenv-only", "environment-wins"],
)
def test_f_the_env_file_is_read(
    stub: LLMStub, tmp_path: Path, environment: dict[str, str], expected_key: str
) -> None:
    (tmp_path / ".env").write_text(f"API_KEY=sk-from-dotenv\nBASE_URL={stub.base_url}\n")
    stub.add_replies(ONE_STEP)

    result = cli(
        "run", TASK, "--model", MODEL, "--tools", "tests.cli.stub_tools:TOOLS", "--no-live",
        env=environment, cwd=tmp_path,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[0, 2, 4]"
    assert stub.requests[0].headers["authorization"] == f"Bearer {expected_key}"


def test_f_a_missing_explicit_env_file_is_a_usage_error(tmp_path: Path) -> None:
    result = cli(
        "run", "x", "--model", MODEL, "--env-file", "nope.env", env={"API_KEY": "k"}, cwd=tmp_path
    )

    assert result.returncode == 2
    assert_one_clean_error(result, "--env-file 'nope.env': no such file")


@pytest.mark.timeout(60)
def test_g_trace_has_one_event_per_task(happy_run: HappyRun) -> None:
    assert happy_run.result.returncode == 0, happy_run.result.stderr
    events = json.loads(happy_run.trace.read_text())["traceEvents"]
    task_ids = Counter(e["args"]["task_id"] for e in events if e.get("cat") == "task")
    assert task_ids == {
        "slow_double_1": 1,
        "slow_double_2": 1,
        "slow_double_3": 1,
        "fetch_title_4": 1,
    }


def json_lines(stdout: str) -> list[dict[str, Any]]:
    """Every stdout line parsed as JSON (fails on any line that is not)."""
    return [json.loads(line) for line in stdout.splitlines()]


@pytest.mark.timeout(60)
def test_h_events_prints_the_run_as_json_lines(stub: LLMStub) -> None:
    stub.add_replies(FAN_OUT, FINISH)

    result = run_task(stub, "--events")

    assert result.returncode == 0, result.stderr
    events = json_lines(result.stdout)
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "run_started" and kinds[-1] == "final_answer", kinds
    assert events[0]["task"] == TASK
    assert events[-1]["answer"] == ANSWER  # the answer is the last event, not a bare line
    assert {e["version"] for e in events} == {1}
    assert len({e["run_id"] for e in events}) == 1
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    assert [e["step"]["number"] for e in events if e["kind"] == "step"] == [1, 2]
    assert "submit_task" in events[kinds.index("step")]["step"]["code"]
    for task_id in ("slow_double_1", "slow_double_2", "slow_double_3", "fetch_title_4"):
        mine = [e["kind"] for e in events if e.get("task_event", {}).get("task_id") == task_id]
        assert mine == ["task_submitted", "task_started", "task_completed"], (task_id, mine)
    middle = set(kinds[1:-1])
    assert middle == {"model_delta", "step", "task_submitted", "task_started", "task_completed"}
    words = [e for e in events if e["kind"] == "model_delta"]  # streamed from the stub
    assert "".join(e["text"] for e in words if e["step"] == 1) == FAN_OUT
    assert kinds.index("model_delta") < kinds.index("step")
    completed = [e["task_event"] for e in events if e["kind"] == "task_completed"]
    assert {t["preview"] for t in completed if t["target"] == "slow_double"} == {"0", "2", "4"}
    assert "completed slow_double_3" not in result.stderr  # no view


@pytest.mark.timeout(60)
def test_h_events_of_a_failed_run_end_with_run_failed(stub: LLMStub) -> None:
    stub.fail_first(10, 500)

    result = run_task(stub, "--events")

    assert result.returncode == 1
    events = json_lines(result.stdout)
    assert [e["kind"] for e in events] == ["run_started", "step", "run_failed"]
    assert "InternalServerError" in events[-1]["error"]
    assert_one_clean_error(result, "model call failed: HTTP 500")


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"]], ids=["help", "run-help"])
def test_help_imports_neither_smolagents_nor_litellm(argv: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "agentloop", *argv],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
        env=os.environ | {"PYTHONPATH": PYTHONPATH},
    )

    assert result.returncode == 0, result.stderr
    assert "usage: agentloop" in result.stdout
    imported = {
        line.rsplit("|", 1)[-1].strip().split(".")[0]
        for line in result.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "agentloop" in imported
    assert not imported & {"smolagents", "litellm", "openai", "dotenv"}


def test_the_stub_answers_like_openai_on_both_paths() -> None:
    """The stub itself: both routes, the error shape, the usage block, the request record."""
    import httpx

    with LLMStub(["hello"]) as stub:
        stub.fail_first(1, 429)
        body = {"model": "m", "messages": [{"role": "user", "content": "hi there"}]}
        root = f"http://127.0.0.1:{stub.port}"
        with httpx.Client(trust_env=False, timeout=10) as client:
            limited = client.post(f"{root}/v1/chat/completions", json=body)
            answered = client.post(f"{root}/chat/completions", json=body)
            exhausted = client.post(f"{root}/v1/chat/completions", json=body)

    assert limited.status_code == 429
    assert limited.json()["error"]["type"] == "rate_limit_exceeded"
    assert limited.headers["retry-after-ms"] == "20"
    reply = answered.json()
    assert reply["choices"][0]["message"] == {"role": "assistant", "content": "hello"}
    assert reply["usage"] == {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3}
    assert exhausted.status_code == 400
    assert [(r.path, r.status) for r in stub.requests] == [
        ("/v1/chat/completions", 429),
        ("/chat/completions", 200),
        ("/v1/chat/completions", 400),
    ]


HANG = (
    "Thought: one long task\n<code>\n"
    'ids = [submit_task("tool", "hang", {"reason": "until Ctrl-C"})]\n'
    "wait_for_tasks(ids)\n"
    "final_answer(get_task_results(ids))\n"
    "</code>"
)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.timeout(60)
@pytest.mark.parametrize("moment", ["while-loading", "mid-model-call", "mid-task"])
def test_ctrl_c_with_no_live_prints_no_internal_error_text(stub: LLMStub, moment: str) -> None:
    """SIGINT while smolagents and litellm load, while the model call is in flight, or while a
    task runs: exit 130, one line saying so, and no error text from the shutdown (a closed
    registry, a failed call, a traceback from inside an import)."""
    stub.add_replies(HANG)
    if moment == "mid-model-call":
        stub.hold()
    env = {"API_KEY": "sk-test", "BASE_URL": stub.base_url}
    process = popen_cli(
        "run", TASK, "--model", MODEL, "--tools", "tests.cli.stub_tools:TOOLS", "--no-live", env=env
    )  # fmt: skip
    try:
        assert process.stderr is not None
        seen = []
        if moment == "mid-model-call":
            assert stub.arrived.wait(40), "the model call never reached the stub"
        else:
            awaited = "loading smolagents" if moment == "while-loading" else "started hang_"
            for line in process.stderr:  # for a task: the controller surely waits on it
                seen.append(line)
                if awaited in line:
                    break
        process.send_signal(signal.SIGINT)
        out, rest = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    stderr = "".join(seen) + rest
    assert process.returncode == 130, stderr
    assert out == ""
    assert stderr.rstrip().endswith("interrupted: tasks cancelled"), stderr
    for internal in ("Traceback", "rror", "xception", "failed"):
        assert internal not in stderr, stderr


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.timeout(60)
def test_ctrl_c_with_events_ends_the_lines_with_run_failed(stub: LLMStub) -> None:
    stub.add_replies(HANG)
    env = {"API_KEY": "sk-test", "BASE_URL": stub.base_url}
    process = popen_cli(
        "run", TASK, "--model", MODEL, "--tools", "tests.cli.stub_tools:TOOLS", "--events", env=env
    )  # fmt: skip
    try:
        assert process.stdout is not None
        seen = []
        for line in process.stdout:  # the lines arrive as they happen: wait for the task
            seen.append(line)
            if json.loads(line)["kind"] == "task_started":
                break
        process.send_signal(signal.SIGINT)
        rest, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    events = json_lines("".join(seen) + rest)
    kinds = [e["kind"] for e in events if e["kind"] != "model_delta"]  # the words came first
    assert kinds[:3] == ["run_started", "task_submitted", "task_started"], kinds
    assert kinds[-1] == "run_failed" and "CancelledError" in events[-1]["error"], kinds
    # between: the cancelled task, and the interrupted step if it ended before the run did
    assert sorted(kinds[3:-1]) in (["task_cancelled"], ["step", "task_cancelled"]), kinds
    assert "Traceback" not in stderr


def test_version() -> None:
    import agentloop

    result = cli("--version")

    assert result.returncode == 0, result.stderr
    assert result.stdout == f"agentloop {agentloop.__version__}\n"


def test_run_help_explains_max_workers_and_max_steps_with_their_defaults() -> None:
    result = cli("run", "--help", env={"COLUMNS": "200"})

    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "--max-workers N blocking (sync) tool calls that run at once (default: 3)" in text
    assert "--max-steps N controller steps before the run gives up (default: 20)" in text


@pytest.mark.parametrize(
    ("model", "needles"),
    [
        ("bogus-model", ["the model id names no provider", "e.g. `openai/bogus-model`"]),
        ("opnai/gpt-4o-mini", ["`opnai` is not a LiteLLM provider. Did you mean `openai`?"]),
    ],
)
def test_a_model_id_litellm_cannot_route_is_a_usage_error_naming_the_provider_problem(
    stub: LLMStub, model: str, needles: list[str]
) -> None:
    env = {"API_KEY": "sk-test", "BASE_URL": stub.base_url}
    result = cli("run", "x", "--model", model, "--no-live", env=env)

    assert result.returncode == 2
    assert_one_clean_error(result, f"--model {model!r}: ", *needles, "PROVIDER/MODEL")
    assert "`?`" not in result.stderr
    assert stub.requests == []  # found out before any call


@pytest.mark.timeout(60)
def test_run_prints_its_first_line_before_importing_smolagents_or_litellm(stub: LLMStub) -> None:
    """Deterministic form of "answers within 0.5 s": the first line precedes the slow imports
    (`-X importtime` reports each import on stderr as it ends, in order with our lines)."""
    stub.add_replies(ONE_STEP)
    env = {"API_KEY": "sk-test", "BASE_URL": stub.base_url}
    process = popen_cli(
        "run", TASK, "--model", MODEL, "--tools", "tests.cli.stub_tools:TOOLS", "--no-live",
        env=env, python=("-X", "importtime"),
    )  # fmt: skip
    out, err = process.communicate(timeout=50)

    assert process.returncode == 0, err[-3000:]
    assert out.strip() == "[0, 2, 4]"
    first, heavy = first_line_before_heavy_imports(err)
    assert first == f"agentloop run · {MODEL}: loading smolagents and LiteLLM...", err[-3000:]
    assert heavy == []
    assert {"smolagents", "litellm"} <= {
        line.rsplit("|", 1)[-1].strip() for line in err.splitlines()
    }  # they were imported, after it
