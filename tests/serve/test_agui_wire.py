"""The AG-UI mapper's JSON, written field by field, against `ag_ui.core` and its encoder: every
event it writes for awkward values (quotes, newlines, non-ASCII, JSON Pointer's `/` and `~`,
numbers and lists in arguments, keys that are not strings, times that are not numbers) parses
as the protocol's `Event` union and is written by `EventEncoder` byte for byte the same."""

from __future__ import annotations

import json
import math
from typing import Any

from agentloop.serve._agui_map import AguiMapper
from agentloop.serve.agui import encode

from ._agui_client import ENCODER, EVENT

AWKWARD = 'a "quoted"\nline\\with\ttabs, é, 漢字, \u2028 and </script>'


def _task(kind: str, task_id: str, status: str, **extra: Any) -> dict[str, Any]:
    event = {
        "task_id": task_id,
        "target": AWKWARD,
        "status": status,
        "attempt": 1,
        "error": None,
        "preview": None,
        **extra,
    }
    return {"kind": kind, "at": 1765000000.25, "task_event": event}


def _events() -> list[dict[str, Any]]:
    arguments = {
        AWKWARD: [1, 2.5, None, True, {"deep": AWKWARD}],
        "n": 10**30,
        "x": math.nan,
    }
    return [
        {"kind": "run_started", "at": 1765000000.0, "task": AWKWARD},
        {"kind": "model_delta", "at": 1765000000.1, "step": 1, "text": AWKWARD},
        {**_task("task_submitted", "a/b~c", "pending"), "arguments": arguments},
        {**_task("task_submitted", "odd keys", "pending"), "arguments": {1: "one", 2.5: "x"}},
        _task("task_started", "a/b~c", "running"),
        {**_task("task_completed", "a/b~c", "completed", preview=AWKWARD), "at": math.inf},
        _task("task_failed", "odd keys", "failed", error=f"ValueError: {AWKWARD}"),
        {"kind": "task_progress", "at": True, "task_event": {"task_id": "a/b~c"}, "note": 1.5},
        {
            "kind": "step",
            "at": 1765000001.0,
            "step": {"number": 1, "code": f"print({AWKWARD!r})", "error": None},
        },
        {"kind": "final_answer", "at": 1765000002.0, "answer": {"text": AWKWARD, "n": [1, 2]}},
    ]


def test_every_written_event_is_the_protocols_to_the_byte() -> None:
    mapper = AguiMapper(key="run-é", thread_id=AWKWARD, run_id="r/1", interrupts=True)
    wires = list(mapper.start_run("r/1", 1765000000.0))
    for data in _events():
        wires.extend(mapper.feed(data))
    kinds = []
    for wire in wires:
        model = EVENT.validate_json(wire)  # raises on anything the protocol does not allow
        assert ENCODER.encode(model) == f"data: {wire}\n\n", wire
        kinds.append(json.loads(wire)["type"])
    assert kinds.count("TOOL_CALL_START") == 2
    assert kinds.count("TOOL_CALL_RESULT") == 2
    assert kinds[-1] == "RUN_FINISHED"


def test_arguments_and_rows_read_back_as_they_were() -> None:
    mapper = AguiMapper(key="k", thread_id="t", run_id="r", interrupts=False)
    events = _events()
    by_type: dict[str, list[dict[str, Any]]] = {}
    for data in events[:4]:
        for wire in mapper.feed(data):
            parsed = json.loads(wire)
            by_type.setdefault(parsed["type"], []).append(parsed)
    args = [json.loads(e["delta"]) for e in by_type["TOOL_CALL_ARGS"]]
    assert args[0][AWKWARD] == [1, 2.5, None, True, {"deep": AWKWARD}]
    assert args[0]["n"] == 10**30 and math.isnan(args[0]["x"])
    assert args[1] == {"1": "one", "2.5": "x"}  # as `json` writes keys that are numbers
    add = by_type["STATE_DELTA"][0]["delta"][0]
    assert add["path"] == "/tasks/a~1b~0c"
    assert add["value"]["target"] == AWKWARD


def test_sse_text_carries_the_event_id_on_the_last_frame_only() -> None:
    mapper = AguiMapper(key="k", thread_id="t", run_id="r", interrupts=False)
    text = encode(mapper.feed(_events()[2]), 7)
    frames = text.split("\n\n")[:-1]
    assert len(frames) == 5  # the step's start, the tool call's three, the task table's patch
    assert [f.startswith("id: 7\n") for f in frames] == [False] * 4 + [True]
