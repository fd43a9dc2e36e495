"""`cli.eventlog`: task intervals and the Chrome trace, read from `RunEvent`s alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agentloop import RunEvent, RunEventKind, StepInfo, TaskEventInfo, TaskStatus
from agentloop.cli.eventlog import EventLog, chrome_trace, task_intervals

T0 = 1_700_000_000.0


def event(kind: RunEventKind, at: float, **fields: Any) -> RunEvent:
    return RunEvent(kind=kind, run_id="run_1", seq=0, at=T0 + at, **fields)


def task(
    kind: RunEventKind, at: float, task_id: str, status: TaskStatus, attempt: int = 1
) -> RunEvent:
    info = TaskEventInfo(task_id=task_id, target="work", status=status, attempt=attempt)
    return event(kind, at, task_event=info)


def one_run() -> list[RunEvent]:
    """a: submitted 0.1, fails at 0.4, retried, runs 0.5-0.9; b: runs 0.2-0.6; c: cancelled
    while pending; a 0.3 s step ending at 1.0; the run ends at 1.1."""
    k, s = RunEventKind, TaskStatus
    step = StepInfo(number=1, code="x = 1", observation=None, error=None, duration=0.3)
    return [
        event(k.RUN_STARTED, 0.0, task="do it"),
        task(k.TASK_SUBMITTED, 0.1, "a", s.PENDING, 0),
        task(k.TASK_SUBMITTED, 0.1, "b", s.PENDING, 0),
        task(k.TASK_SUBMITTED, 0.1, "c", s.PENDING, 0),
        task(k.TASK_STARTED, 0.15, "a", s.RUNNING),
        task(k.TASK_STARTED, 0.2, "b", s.RUNNING),
        task(k.TASK_RETRIED, 0.4, "a", s.PENDING),
        task(k.TASK_STARTED, 0.5, "a", s.RUNNING, 2),
        task(k.TASK_COMPLETED, 0.6, "b", s.COMPLETED),
        task(k.TASK_COMPLETED, 0.9, "a", s.COMPLETED, 2),
        task(k.TASK_CANCELLED, 1.05, "c", s.CANCELLED, 0),
        event(k.STEP, 1.0, step=step),
        event(k.FINAL_ANSWER, 1.1, answer=42),
    ]


def rounded(value: float) -> float:
    return round(value, 6)


def test_task_intervals_come_from_the_task_events_at_stamps() -> None:
    intervals = {i.task_id: i for i in task_intervals(one_run())}

    a, b, c = intervals["a"], intervals["b"], intervals["c"]
    assert (rounded(a.submitted), rounded(a.started), rounded(a.ended), a.attempts) == (
        0.1, 0.5, 0.9, 2,
    )  # fmt: skip
    assert a.status == "completed" and rounded(a.duration) == 0.4  # the last attempt
    assert (rounded(b.started), rounded(b.ended)) == (0.2, 0.6)
    assert c.status == "cancelled" and c.started == c.ended  # never ran
    assert [i.task_id for i in task_intervals(one_run())] == ["b", "a", "c"]  # by start


def test_the_chrome_trace_has_the_run_its_steps_and_one_lane_per_overlapping_task() -> None:
    trace = chrome_trace([one_run()], process="test")
    complete = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    by_name = {e["name"]: e for e in complete}

    run, step = by_name["run run_1"], by_name["step 1"]
    outcome = run["args"]["outcome"]
    assert (run["ts"], round(run["dur"]), run["tid"], outcome) == (0, 1_100_000, 1, "final_answer")
    assert (round(step["ts"]), round(step["dur"]), step["tid"]) == (700_000, 300_000, 1)
    a, b = by_name["a"], by_name["b"]
    assert a["args"]["queued_s"] == 0.4 and a["args"]["attempts"] == 2
    assert a["tid"] != b["tid"]  # they overlap: separate rows
    assert {e["tid"] for e in complete if e["cat"] == "task"} <= {2, 3}
    assert json.loads(json.dumps(trace)) == trace


def test_runs_are_told_apart_by_run_started_even_with_the_same_run_id(tmp_path: Path) -> None:
    log = EventLog()
    for e in [*one_run(), *one_run()]:  # two agents' first runs: both `run_1`
        log.add(e)
    assert len(log.runs) == 2 and log.last_run == one_run()

    count = log.write_chrome_trace(tmp_path / "t.json")
    events = json.loads((tmp_path / "t.json").read_text())["traceEvents"]
    assert len(events) == count
    tasks = [e for e in events if e.get("cat") == "task"]
    assert sorted((e["args"]["run"], e["name"]) for e in tasks) == [
        (0, "a"), (0, "b"), (0, "c"), (1, "a"), (1, "b"), (1, "c"),
    ]  # fmt: skip
