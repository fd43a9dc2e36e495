"""`agentloop demo`, driven as a user drives it: in a subprocess, offline.

Most of the processes are forks of a warm interpreter that has imported smolagents and the
demo (`tests.warm`); the console-script and import-order tests start cold ones.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .. import warm
from .importtime import first_line_before_heavy_imports

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "COLUMNS": "120"}
PRELOAD = ("agentloop.cli.demo_cmd", "agentloop.agent.async_agent", "agentloop.testing")


def warm_demo(*args: str) -> list[str]:
    """`python -m agentloop demo ARGS`, forked from a warm interpreter."""
    return warm.python("-m", "agentloop", "demo", *args, env=ENV, preload=PRELOAD)


def demo(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        warm_demo(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=ENV,
        cwd=ROOT,
        check=False,
    )


@pytest.fixture(scope="module")
def full_demo(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], float, Path]:
    trace = tmp_path_factory.mktemp("trace") / "demo.json"
    started = time.monotonic()
    result = demo("--no-live", "--trace", str(trace))
    return result, time.monotonic() - started, trace


@pytest.mark.timeout(120)
def test_demo_runs_every_scenario_offline_in_under_a_minute(full_demo) -> None:  # type: ignore[no-untyped-def]
    result, elapsed, _ = full_demo
    assert result.returncode == 0, result.stderr[-3000:]
    assert elapsed < 60
    out = result.stdout
    assert "scripted planner" in out  # clearly labelled: no LLM
    for title in ("Batch processing", "Multi-source integration", "e-commerce", "Quarterly"):
        assert title in out
    assert out.count("─ final answer") == 5  # four scenarios plus the batch comparison
    assert "Traceback" not in result.stderr


@pytest.mark.timeout(120)
def test_batch_speedup_and_pipelining_margin(full_demo) -> None:  # type: ignore[no-untyped-def]
    out = " ".join(full_demo[0].stdout.split())  # undo line wrapping
    speedups = [float(x) for x in re.findall(r"speedup (\d+\.\d)x", out)]
    assert speedups[0] >= 4.0, speedups  # the batch scenario, pipelined plan
    match = re.search(
        r"pipelined plan (\d+\.\d+) s .* vs stage-by-stage plan (\d+\.\d+) s "
        r".*finished (\d+)% sooner",
        out,
    )
    assert match, out[-2000:]
    pipelined, staged, sooner = float(match[1]), float(match[2]), int(match[3])
    assert pipelined <= 0.85 * staged
    assert sooner >= 15


@pytest.mark.timeout(120)
def test_trace_file_is_chrome_trace_json_with_one_event_per_task(full_demo) -> None:  # type: ignore[no-untyped-def]
    trace = json.loads(full_demo[2].read_text())
    events = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    runs = [e for e in events if e["name"].startswith("run ")]
    assert [e["args"]["outcome"] for e in runs] == ["final_answer"] * 5
    steps = [e for e in events if e["name"].startswith("step ")]
    assert len(steps) >= 5 and all(e["tid"] == 1 and e["dur"] > 0 for e in steps)
    tasks = [e for e in events if e["cat"] == "task"]
    by_trace: dict[int, list[dict[str, object]]] = {}  # by run
    for event in tasks:
        by_trace.setdefault(event["args"]["run"], []).append(event)
    sizes = sorted(len(v) for v in by_trace.values())
    assert sizes == [4, 5, 5, 30, 30]  # quarterly (one a direct call), sources, ecommerce, batch x2
    for trace_events in by_trace.values():
        ids = [e["args"]["task_id"] for e in trace_events]
        assert len(ids) == len(set(ids))  # exactly one event per task
        for event in trace_events:
            assert event["dur"] > 0 and event["ts"] >= 0
    # overlap: in the batch runs, many tasks run at the same moment
    batch = max(by_trace.values(), key=len)
    peak = max(
        sum(1 for e in batch if e["ts"] <= probe["ts"] < e["ts"] + e["dur"]) for probe in batch
    )
    assert peak >= 10
    lanes = {e["tid"] for e in batch}
    assert len(lanes) >= 10  # overlapping tasks are drawn on separate rows


def test_single_scenario_and_the_console_script() -> None:
    script = Path(sys.executable).with_name("agentloop")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "agentloop"]
    result = subprocess.run(
        [*command, "demo", "quarterly", "--no-live"],
        capture_output=True,
        text=True,
        timeout=60,
        env=ENV,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Q1 report. Sales:" in " ".join(result.stdout.split())
    assert "Batch processing" not in result.stdout


@pytest.mark.timeout(60)
def test_events_prints_every_run_as_json_lines_and_nothing_else_on_stdout() -> None:
    result = demo("sources", "--events")

    assert result.returncode == 0, result.stderr[-2000:]
    events = [json.loads(line) for line in result.stdout.splitlines()]
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "run_started" and kinds[-1] == "final_answer"
    assert kinds.count("run_started") == 1 and kinds.count("task_completed") == 5
    assert {e["version"] for e in events} == {1}
    assert "final answer" in result.stderr  # the report still shows, on stderr


def test_unknown_scenario_is_a_usage_error() -> None:
    result = demo("nope")
    assert result.returncode == 2
    assert "invalid choice: 'nope'" in result.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_cancels_the_run_and_exits_130_without_a_traceback() -> None:
    process = subprocess.Popen(
        warm_demo("batch", "--no-live"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:  # wait until tasks are really running
            if "started" in line:
                break
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130
    assert "interrupted: tasks cancelled" in stderr
    assert "Traceback" not in stderr
    assert "rror" not in stdout, stdout  # a step cut short by the shutdown says `interrupted`


@pytest.mark.timeout(60)
def test_demo_prints_its_banner_before_importing_smolagents() -> None:
    process = subprocess.Popen(
        [sys.executable, "-X", "importtime", "-m", "agentloop", "demo", "quarterly", "--no-live"],
        env=ENV,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one stream: the banner and the import lines in order
        text=True,
    )
    out, _ = process.communicate(timeout=50)

    assert process.returncode == 0, out[-3000:]
    first, heavy = first_line_before_heavy_imports(out)
    assert first.startswith("agentloop demo — offline."), out[-3000:]
    assert heavy == []
    assert "smolagents" in {line.rsplit("|", 1)[-1].strip() for line in out.splitlines()}


@pytest.mark.timeout(120)
def test_the_ecommerce_inventory_change_waits_for_approval_and_is_auto_approved(full_demo) -> None:  # type: ignore[no-untyped-def]
    lines = full_demo[0].stdout.splitlines()
    asked = next(i for i, line in enumerate(lines) if "approval optimize_inventory_3:" in line)
    assert 'optimize_inventory(warehouse="EU-1") awaits a decision' in lines[asked]
    approved = next(i for i, line in enumerate(lines) if "approved optimize_inventory_3" in line)
    started = next(i for i, line in enumerate(lines) if "started optimize_inventory_3" in line)
    assert asked < approved < started
    assert "(auto-approved by the demo)" in lines[approved]
    others = [i for i, line in enumerate(lines) if "started research_competitors_4" in line]
    assert others and others[0] < approved  # the run did not stop for the approval


@pytest.mark.timeout(60)
def test_events_carry_the_approval_request() -> None:
    result = demo("ecommerce", "--events")

    assert result.returncode == 0, result.stderr[-2000:]
    events = [json.loads(line) for line in result.stdout.splitlines()]
    [request] = [e for e in events if e["kind"] == "approval_requested"]
    assert request["task_event"]["status"] == "awaiting_approval"
    assert request["arguments"] == {"warehouse": "EU-1"}
    assert request["asked_by"] == ["planner"]
    done = [e for e in events if e["kind"] == "task_completed"]
    assert len(done) == 5
