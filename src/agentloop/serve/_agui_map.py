"""A run's events as AG-UI events: the mapping docs/protocols.md tables, as a state machine.

`AguiMapper` reads a run's events in order (the dicts of `RunEvent.to_dict()`, as the service
and `RunStream` give them) and returns, for each, the AG-UI events it becomes, as JSON text in
the protocol's wire shape (camelCase keys, in the order `ag_ui.core`'s models write them). It is
deterministic: the same events always give the same AG-UI events, which is what lets a
reconnecting client be sent exactly the rest of its stream (replay, drop what it has seen).

Why JSON written here and not `ag_ui.core` models: building and dumping a pydantic model per
event costs about 40 us, and a run's task events are many (each submitted task is four AG-UI
events). Nor dicts handed to the `json` module: the events are flat records of strings and
numbers, and writing each field with the module's C string escaper costs about half as much
(bench `agui`). The wire form is the package's all the same: the tests parse every event back
with `ag_ui.core`'s `Event` union and check that its `EventEncoder` writes the same bytes.

With `interrupts` on (a client that started the run over AG-UI), an approval request ends the
AG-UI run with an `interrupt` outcome; the agentloop run goes on, and the client's next input
(its `resume` entries) decides and continues it. Off (a run watched over AG-UI), a request is a
`CUSTOM` event and the stream goes on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from math import isfinite
from typing import Any

__all__ = ["APPROVAL_SCHEMA", "AguiMapper", "Wire"]

Wire = str
"""One AG-UI event: its JSON text, byte for byte as `ag_ui.encoder.EventEncoder` writes it."""

APPROVAL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"approved": {"type": "boolean"}, "reason": {"type": "string"}},
    "required": ["approved"],
}
"""What a resume entry's `payload` answers to an approval interrupt."""

_RESULT_KINDS = frozenset({"task_completed", "task_failed", "task_cancelled", "task_timed_out"})
_CUSTOM_KINDS = frozenset(
    {"run_resumed", "model_fallback", "model_retried", "events_dropped", "task_progress"}
)


class AguiMapper:
    """The AG-UI events of one run, event by event (see the module's docstring)."""

    def __init__(self, *, key: str, thread_id: str, run_id: str, interrupts: bool) -> None:
        self.key = key
        """The agentloop run's id: message and tool call ids start with it, so they are
        unique in the thread (a session's turns are runs of their own)."""
        self.thread_id = thread_id
        self.run_id = run_id
        """The AG-UI run the events are shown as (a new one after each interrupt)."""
        self.interrupts = interrupts
        self.finished = False
        """The AG-UI run ended (interrupt, answer, error): `start_run` begins the next one."""
        self.pending: dict[str, dict[str, Any]] = {}
        """Approval requests not answered yet, as interrupts, by approval id."""
        self.decided: set[str] = set()
        """Approvals answered outside the stream (resume entries): never shown pending."""
        self.tasks: dict[str, dict[str, Any]] = {}
        """The task table: a row per task this stream saw submitted."""
        self._step = 0
        """The number of the last finished model step."""
        self._open_step: int | None = None
        self._message: str | None = None
        """The open text message (the step's words as the model writes them)."""
        self._worded: set[int] = set()
        """Steps whose message was started (from deltas) or whose tool calls began."""
        self._said: dict[int, str] = {}
        """The words streamed for a step (bounded), until its `step` event."""

    # -- the AG-UI run ----------------------------------------------------------------------------

    def start_run(self, run_id: str, at: float | None = None) -> list[Wire]:
        """RUN_STARTED for AG-UI run `run_id` and the task table as it is."""
        self.run_id, self.finished = run_id, False
        stamp = _stamp(at)
        started = _event("RUN_STARTED", stamp, threadId=self.thread_id, runId=run_id)
        return [started, _event("STATE_SNAPSHOT", stamp, snapshot={"tasks": dict(self.tasks)})]

    def close(self) -> None:
        """Forget the open step and message (an AG-UI run before this one closed them)."""
        self._close("", [])

    def feed(self, data: Mapping[str, Any]) -> list[Wire]:
        """The AG-UI events of one run event (none once the AG-UI run has finished)."""
        if self.finished:
            self._fold(data)
            return []
        kind = data.get("kind")
        stamp = _stamp(data.get("at"))
        out: list[Wire] = []
        if kind == "model_delta":
            self._delta(data, stamp, out)
        elif kind == "task_submitted":
            self._submitted(data, stamp, out)
        elif kind == "approval_requested":
            self._approval(data, stamp, out)
        elif kind == "step":
            self._step_done(data, stamp, out)
        elif kind == "final_answer":
            self._close(stamp, out)
            self._answer(data, stamp, out)
        elif kind == "run_failed":
            self._close(stamp, out)
            self._failed(data, stamp, out)
        elif kind == "run_parked":
            self._parked(data, stamp, out)
        elif kind in _RESULT_KINDS or kind in ("task_started", "task_retried"):
            self._task_update(str(kind), data, stamp, out)
        if kind in _CUSTOM_KINDS:
            value = {k: v for k, v in data.items() if k not in ("version", "run_id", "seq")}
            out.append(
                _event("CUSTOM", stamp, name=f"agentloop.{kind}", value=_Json(_object(value)))
            )
        return out

    def cut(self, at: float | None = None) -> list[Wire]:
        """End the AG-UI run with an interrupt outcome naming every pending approval."""
        return self._cut(_stamp(at))

    def _cut(self, stamp: str) -> list[Wire]:
        out: list[Wire] = []
        self._close(stamp, out)
        waiting = [i for key, i in self.pending.items() if key not in self.decided]
        if not waiting:
            return out
        outcome = {"type": "interrupt", "interrupts": waiting}
        out.append(
            _event(
                "RUN_FINISHED", stamp, threadId=self.thread_id, runId=self.run_id, outcome=outcome
            )
        )
        self.finished = True
        return out

    def unfinished(self) -> list[Wire]:
        """RUN_ERROR for a run whose events stopped before its end (it was not recorded)."""
        self._ended()
        return [_event("RUN_ERROR", "", message="the run ended without an end event")]

    # -- the model's steps ------------------------------------------------------------------------

    def _enter_step(self, number: int, stamp: str, out: list[Wire]) -> None:
        if self._open_step == number:
            return
        if self._open_step is not None:
            self._finish_step(stamp, out)
        self._open_step = number
        out.append(_event("STEP_STARTED", stamp, stepName=f"step {number}"))

    def _finish_step(self, stamp: str, out: list[Wire]) -> None:
        self._end_message(stamp, out)
        if self._open_step is not None:
            out.append(_event("STEP_FINISHED", stamp, stepName=f"step {self._open_step}"))
            self._open_step = None

    def _end_message(self, stamp: str, out: list[Wire]) -> None:
        if self._message is not None:
            out.append(_event("TEXT_MESSAGE_END", stamp, messageId=self._message))
            self._message = None

    def _delta(self, data: Mapping[str, Any], stamp: str, out: list[Wire]) -> None:
        number, text = data.get("step"), data.get("text")
        if not isinstance(number, int) or number <= self._step or not isinstance(text, str):
            return
        message = self._step_message(number)
        if self._message != message:
            if number in self._worded:  # its tool calls have begun: the words are done
                return
            self._enter_step(number, stamp, out)
            self._worded.add(number)
            self._message = message
            out.append(_event("TEXT_MESSAGE_START", stamp, messageId=message, role="assistant"))
        out.append(_event("TEXT_MESSAGE_CONTENT", stamp, messageId=message, delta=text))
        self._said[number] = self._said.get(number, "") + text[:_SAID_CHARS]

    def _step_done(self, data: Mapping[str, Any], stamp: str, out: list[Wire]) -> None:
        step = data.get("step")
        info = step if isinstance(step, Mapping) else {}
        number = info.get("number")
        number = number if isinstance(number, int) and number > self._step else self._step + 1
        self._enter_step(number, stamp, out)
        self._end_message(stamp, out)
        said = self._said.pop(number, None)
        code = info.get("code")
        if said is None or (isinstance(code, str) and code.strip() not in said):
            # no words streamed (or some were lost: deltas are live only): the code is the
            # step's message, or a second one after the words that were streamed
            words = _step_words(info)
            if words:
                message = self._step_message(number) + ("" if said is None else ":code")
                out.append(_event("TEXT_MESSAGE_START", stamp, messageId=message, role="assistant"))
                out.append(_event("TEXT_MESSAGE_CONTENT", stamp, messageId=message, delta=words))
                out.append(_event("TEXT_MESSAGE_END", stamp, messageId=message))
        self._finish_step(stamp, out)
        self._step = number

    def _step_message(self, number: int) -> str:
        return f"{self.key}:step-{number}"

    # -- tasks: tool calls and the task table -----------------------------------------------------

    def _submitted(self, data: Mapping[str, Any], stamp: str, out: list[Wire]) -> None:
        event = _task_event(data)
        task_id = str(event.get("task_id"))
        number = self._step + 1
        self._enter_step(number, stamp, out)
        self._end_message(stamp, out)
        parent = self._step_message(number) if number in self._worded else None
        self._worded.add(number)  # later words of this step would follow its calls: none
        call = self._call_id(task_id)
        name = str(event.get("target"))
        if parent is None:
            start = _event("TOOL_CALL_START", stamp, toolCallId=call, toolCallName=name)
        else:
            start = _event(
                "TOOL_CALL_START", stamp, toolCallId=call, toolCallName=name, parentMessageId=parent
            )
        arguments = data.get("arguments")
        args = _object(arguments) if isinstance(arguments, Mapping) else "{}"
        out.append(start)
        out.append(_event("TOOL_CALL_ARGS", stamp, toolCallId=call, delta=args))
        out.append(_event("TOOL_CALL_END", stamp, toolCallId=call))
        self._row(task_id, event, stamp, out)

    def _task_update(self, kind: str, data: Mapping[str, Any], stamp: str, out: list[Wire]) -> None:
        event = _task_event(data)
        task_id = str(event.get("task_id"))
        self.pending.pop(task_id, None)
        if task_id not in self.tasks:  # not one this stream saw submitted (a nested run's)
            return
        self._row(task_id, event, stamp, out)
        if kind in _RESULT_KINDS:
            call = self._call_id(task_id)
            status = str(event.get("status"))
            if kind == "task_completed":
                content = str(event.get("preview") or "")
            else:
                content = f"{status}: {event.get('error') or status}"
            out.append(
                _event(
                    "TOOL_CALL_RESULT",
                    stamp,
                    messageId=f"{call}:result",
                    toolCallId=call,
                    content=content,
                    role="tool",
                )
            )

    def _row(self, task_id: str, event: Mapping[str, Any], stamp: str, out: list[Wire]) -> None:
        target, status, attempt, error, preview = (
            event.get("target"),
            event.get("status"),
            event.get("attempt"),
            event.get("error"),
            event.get("preview"),
        )
        op = "replace" if task_id in self.tasks else "add"
        self.tasks[task_id] = {
            "target": target, "status": status, "attempt": attempt, "error": error,
            "preview": preview,
        }  # fmt: skip
        row = (
            f'{{"target":{_json(target)},"status":{_json(status)},"attempt":{_json(attempt)},'
            f'"error":{_json(error)},"preview":{_json(preview)}}}'
        )  # the hottest event of all: written here, not by `_object`
        path = _string(f"/tasks/{_pointer(task_id)}")
        patch = f'[{{"op":"{op}","path":{path},"value":{row}}}]'
        out.append(_event("STATE_DELTA", stamp, delta=_Json(patch)))

    def _call_id(self, task_id: str) -> str:
        return f"{self.key}:{task_id}"

    # -- approvals --------------------------------------------------------------------------------

    def _approval(self, data: Mapping[str, Any], stamp: str, out: list[Wire]) -> None:
        event = _task_event(data)
        task_id = str(event.get("task_id"))
        approval_id = str(data.get("approval_id") or task_id)
        own = approval_id == task_id and task_id in self.tasks
        if own:
            self._row(task_id, event, stamp, out)
        target = str(event.get("target"))
        given = data.get("arguments")
        arguments = given if isinstance(given, Mapping) else {}
        asked_by = data.get("asked_by") or []
        interrupt: dict[str, Any] = {
            "id": approval_id,
            "reason": "approval",
            "message": f"`{target}` needs approval to run with {_object(arguments)}",
        }
        if own:
            interrupt["toolCallId"] = self._call_id(task_id)
        interrupt["responseSchema"] = APPROVAL_SCHEMA
        interrupt["metadata"] = {"target": target, "arguments": arguments, "asked_by": asked_by}
        self.pending[approval_id] = interrupt
        if approval_id in self.decided:
            return
        if self.interrupts:
            out.extend(self._cut(stamp))
        else:
            out.append(
                _event("CUSTOM", stamp, name="agentloop.approval_requested", value=interrupt)
            )

    def _parked(self, data: Mapping[str, Any], stamp: str, out: list[Wire]) -> None:
        if self.interrupts:
            out.extend(self._cut(stamp))
        else:
            value = {"approval_ids": data.get("approval_ids", [])}
            out.append(_event("CUSTOM", stamp, name="agentloop.run_parked", value=value))

    # -- the end ----------------------------------------------------------------------------------

    def _close(self, stamp: str, out: list[Wire]) -> None:
        self._finish_step(stamp, out)

    def _answer(self, data: Mapping[str, Any], stamp: str, out: list[Wire]) -> None:
        answer = data.get("answer")
        text = answer if isinstance(answer, str) else _dumps(answer)  # a typed answer's JSON
        message = f"{self.key}:answer"
        out.append(_event("TEXT_MESSAGE_START", stamp, messageId=message, role="assistant"))
        out.append(_event("TEXT_MESSAGE_CONTENT", stamp, messageId=message, delta=text))
        out.append(_event("TEXT_MESSAGE_END", stamp, messageId=message))
        out.append(
            _event(
                "RUN_FINISHED",
                stamp,
                threadId=self.thread_id,
                runId=self.run_id,
                result=answer,
                outcome={"type": "success"},
            )
        )
        self._ended()

    def _failed(self, data: Mapping[str, Any], stamp: str, out: list[Wire]) -> None:
        error = str(data.get("error") or "the run failed")
        if error.startswith("CancelledError"):
            outcome = {"type": "cancelled"}
            ids = {"threadId": self.thread_id, "runId": self.run_id}
            out.append(_event("RUN_FINISHED", stamp, **ids, outcome=outcome))
        else:
            code = error.partition(":")[0] if ":" in error[:80] else "run_failed"
            out.append(_event("RUN_ERROR", stamp, message=error, code=code))
        self._ended()

    def _ended(self) -> None:
        self.finished = True
        self.pending.clear()

    def _fold(self, data: Mapping[str, Any]) -> None:
        """Keep the task table and pending approvals current while no AG-UI run is open."""
        kind = data.get("kind")
        if kind in ("final_answer", "run_failed"):
            self._ended()
            return
        scratch: list[Wire] = []
        if kind == "task_submitted":
            event = _task_event(data)
            self._row(str(event.get("task_id")), event, "", scratch)
        elif kind == "approval_requested":
            interrupts, self.interrupts = self.interrupts, False
            self._approval(data, "", scratch)
            self.interrupts = interrupts
        elif kind == "step":
            step = data.get("step")
            number = step.get("number") if isinstance(step, Mapping) else None
            self._step = number if isinstance(number, int) else self._step + 1
        elif kind in _RESULT_KINDS or kind in ("task_started", "task_retried"):
            self._task_update(str(kind), data, "", scratch)


_SAID_CHARS = 20_000
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
"""The general encoder, for values of any shape (one instance: `json.dumps` with options
builds one per call)."""
_string = json.encoder.encode_basestring
"""The `json` module's C escaper of a str (the same text as `ensure_ascii=False`)."""


class _Json(str):
    """Text that is JSON already (written here): `_json` puts it in as it is."""

    __slots__ = ()


def _stamp(at: Any) -> str:
    """The `timestamp` member (ms) of the AG-UI events of a run event at `at` (seconds), with
    its comma, or nothing for an event without a time: written once per run event."""
    if (type(at) is float and isfinite(at)) or type(at) is int:
        return f',"timestamp":{int(at * 1000)}'
    return ""


def _event(kind: str, stamp: str, **fields: Any) -> Wire:
    """An AG-UI event's JSON: `type`, the `timestamp` member (`_stamp`), then `fields` in the
    order given (the models' order). The field names are our own (ASCII)."""
    members = "".join([f',"{name}":{_json(value)}' for name, value in fields.items()])
    return f'{{"type":"{kind}"{stamp}{members}}}'


def _json(value: Any) -> str:
    """One value's JSON: strings, whole numbers and None written here (the events' fields
    nearly all are), anything else by the general encoder."""
    kind = type(value)
    if kind is str:
        return _string(value)
    if kind is _Json:
        return value  # type: ignore[no-any-return]
    if kind is int:
        return int.__repr__(value)
    if value is None:
        return "null"
    return _dumps(value)


def _object(fields: Mapping[Any, Any]) -> str:
    """A mapping's JSON (arguments, a task's row): each member by `_json`; the general
    encoder for a mapping with a key that is not a str (it converts numbers, refuses others)."""
    parts = []
    for key, value in fields.items():
        if type(key) is not str:
            return _dumps(dict(fields))
        parts.append(f"{_string(key)}:{_json(value)}")
    return "{" + ",".join(parts) + "}"


def _task_event(data: Mapping[str, Any]) -> Mapping[str, Any]:
    event = data.get("task_event")
    return event if isinstance(event, Mapping) else {}


def _pointer(key: str) -> str:
    """`key` as one JSON Pointer token (RFC 6901)."""
    return key.replace("~", "~0").replace("/", "~1")


def _step_words(info: Mapping[str, Any]) -> str:
    code, error = info.get("code"), info.get("error")
    if isinstance(code, str) and code.strip():
        return f"```python\n{code}\n```"
    return f"Error: {error}" if isinstance(error, str) and error else ""
