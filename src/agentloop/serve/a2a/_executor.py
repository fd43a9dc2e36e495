"""A served agent as an a2a-sdk `AgentExecutor`: an A2A task is a service run.

`message/send` and `message/stream` start a run through the `RunService` (or, when the
client names a context id, the next turn of the session of that id), so an A2A task is listed,
journaled, resumable and visible in the console like any run; its task id is the run's id (a
session turn keeps its own `{session}.{n}`). The executor follows the run's events from the
service's `EventHub` and turns them into A2A task updates: every step and task event a
`working` status whose message says what happened, the final answer an artifact (a string as
a text part, any other value as a data part: typed answers stay structured), and the end a
`completed`, `failed` or `canceled` status. `tasks/cancel` cancels the run.

The caller's trace context (`traceparent` in the request) is made current while the run is
started, so the run's span joins the calling agent's trace.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

from a2a.helpers.proto_helpers import new_data_part, new_task_from_user_message, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events.event_queue_v2 import EventQueue  # type: ignore[attr-defined]
from a2a.server.tasks import TaskUpdater
from a2a.types.a2a_pb2 import Message, Part, Role, TaskState

from ..._text import bounded, json_value
from .._auth import Principal
from .._guard import Refused, RunRate
from .._runs import RunService, ServedAgent
from .._sessions import SessionBook

__all__ = ["PRINCIPAL", "SESSION", "RunExecutor"]

PRINCIPAL = "agentloop.principal"
"""Where the route puts the caller in the call context's state."""
SESSION = "agentloop.session"
"""Set when the client named a context id: the message is that session's next turn."""
MAX_STATUS_TEXT = 300
_TASK_EVENTS = {
    "task_submitted": "submitted",
    "task_started": "started",
    "task_progress": "progress",
    "task_completed": "completed",
    "task_failed": "failed",
    "task_cancelled": "cancelled",
    "task_timed_out": "timed out",
    "task_retrying": "retrying",
}


class RunExecutor(AgentExecutor):
    """Runs one served agent's A2A tasks as service runs."""

    def __init__(
        self,
        served: ServedAgent,
        runs: RunService,
        sessions: SessionBook,
        rate: RunRate,
        max_task_chars: int,
        keep: int = 10_000,
    ) -> None:
        self._served = served
        self._runs = runs
        self._sessions = sessions
        self._rate = rate
        self._max_task_chars = max_task_chars
        self._run_of: OrderedDict[str, tuple[str, Principal]] = OrderedDict()
        """A2A task id -> (run id, its principal), for `cancel` (bounded)."""
        self._keep = keep

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        state = context.call_context.state
        principal: Principal = state[PRINCIPAL]
        task_id, context_id = str(context.task_id), str(context.context_id)
        if context.current_task is None and context.message is not None:
            await event_queue.enqueue_event(new_task_from_user_message(context.message))
        updater = TaskUpdater(event_queue, task_id, context_id)
        text = context.get_user_input()
        if not text.strip() or len(text) > self._max_task_chars:
            why = (
                "the message has no text part: send the task as text."
                if not text.strip()
                else f"the task has {len(text)} characters; at most {self._max_task_chars}."
            )
            await updater.reject(_agent_message(why, task_id, context_id))
            return
        try:
            with _caller_trace(state.get("headers")):
                self._rate.take(principal.name)
                if state.get(SESSION):
                    await self._sessions.open(self._served, principal, context_id)
                    live = await self._sessions.message(context_id, text, principal)
                else:
                    live = self._runs.start(self._served, text, principal, run_id=task_id)
        except Refused as refused:
            await updater.reject(_agent_message(refused.message, task_id, context_id))
            return
        self._runs.hub.opened(live.run_id)  # followed from its first event, however early
        self._run_of[task_id] = (live.run_id, principal)
        while len(self._run_of) > self._keep:
            self._run_of.popitem(last=False)
        await updater.start_work(_agent_message(f"run {live.run_id} started", task_id, context_id))
        async for batch in self._runs.hub.follow(live.run_id, 0):
            for frame in batch or ():
                if await _relay(frame.data, updater, task_id, context_id):
                    return

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        task_id, context_id = str(context.task_id), str(context.context_id)
        found = self._run_of.get(task_id)
        if found is not None:
            run_id, principal = found
            with contextlib.suppress(Refused):  # ended meanwhile: nothing to stop
                await self._runs.cancel(run_id, principal)
        updater = TaskUpdater(event_queue, task_id, context_id)
        await updater.cancel(_agent_message("cancelled by the client", task_id, context_id))


async def _relay(
    data: Mapping[str, Any], updater: TaskUpdater, task_id: str, context_id: str
) -> bool:
    """Pass one run event on as A2A updates; True once the task has ended."""
    kind = str(data.get("kind"))
    if kind == "final_answer":
        answer = data.get("answer")
        part = (
            new_text_part(answer) if isinstance(answer, str) else new_data_part(json_value(answer))
        )
        await updater.add_artifact([part], name="answer", last_chunk=True)
        await updater.complete()
        return True
    if kind == "run_failed":
        error = str(data.get("error") or "failed")
        if error.startswith("CancelledError"):
            await updater.cancel(_agent_message("the run was cancelled", task_id, context_id))
        else:
            await updater.failed(_agent_message(error, task_id, context_id))
        return True
    text = _status_text(kind, data)
    if text is not None:
        await updater.update_status(
            TaskState.TASK_STATE_WORKING,
            _agent_message(text, task_id, context_id),
            metadata={"agentloop_event": kind},
        )
    return False


def _status_text(kind: str, data: Mapping[str, Any]) -> str | None:
    task = data.get("task_event")
    if isinstance(task, Mapping) and kind in _TASK_EVENTS:
        text = f"task {task.get('task_id')} (`{task.get('target')}`) {_TASK_EVENTS[kind]}"
        detail = task.get("error") or task.get("progress")
        return text + (f": {detail}" if detail else "")
    if kind == "approval_requested" and isinstance(task, Mapping):
        return f"task {task.get('task_id')} (`{task.get('target')}`) waits for approval"
    if kind == "step":
        return f"step {data.get('step', '')} done".replace("  ", " ")
    if kind == "run_resumed":
        return "the run resumed after a restart"
    return None


def _agent_message(text: str, task_id: str, context_id: str) -> Message:
    import uuid

    return Message(
        role=Role.ROLE_AGENT,
        message_id=uuid.uuid4().hex,
        task_id=task_id,
        context_id=context_id,
        parts=[Part(text=bounded(text, MAX_STATUS_TEXT))],
    )


@contextlib.contextmanager
def _caller_trace(headers: Mapping[str, str] | None) -> Iterator[None]:
    """The caller's trace context (W3C headers) as the current one, if it sent any."""
    if not headers or "traceparent" not in headers:
        yield
        return
    from opentelemetry import context as otel_context
    from opentelemetry.propagate import extract

    token = otel_context.attach(extract(dict(headers)))
    try:
        yield
    finally:
        otel_context.detach(token)
