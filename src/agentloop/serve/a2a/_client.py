"""`A2AAgent`: a remote A2A agent as a managed agent of an `AsyncAgent`.

Why a managed agent, not a target source: a remote agent is one thing the model delegates to
(`submit_task("managed_agent", "research", {"task": ...})`, or `research(task=...)`), with
the managed-agent signature and prompt text the model already knows; a source lists *many*
targets that appear and change at run time (an MCP server's tools). So `A2AAgent` follows the
managed-agent protocol (`name`, `description`, async `arun(task)`) and adds `arun_in`, which
the registry calls with its `SourceContext`: that is how the remote task's streamed status
becomes the local task's progress (`check_task`, the run's `task_progress` events).

Each call streams `message/send` (`SendStreamingMessage`) and follows the remote task to its
end: its status updates are the local task's progress, its artifacts its result (a text part
as a string, a data part as its JSON value). Cancelling the local task (`cancel_task`, the run
ending) sends `tasks/cancel`. The request carries the current trace context (W3C
`traceparent`), so the remote run's spans join the caller's trace.

With a journal, the remote task's id is recorded in the run's journal as soon as the remote
agent names it, before the local task goes on (`_remote.py`); the message id is the local
task's idempotency key. A resumed run reruns the task, which finds the recorded id and follows
the remote task (`tasks/get`, then `tasks/subscribe`) instead of sending the message again;
a crash between sending and recording resends the same message id, which agentloop's server
answers with the task it already started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..._text import bounded
from ...errors import AgentloopError, InvalidArgumentsError
from ...tasks import TaskProgress
from ._remote import message_key, record_remote, recorded_remote

if TYPE_CHECKING:
    import httpx
    from a2a.client import Client
    from a2a.types.a2a_pb2 import AgentCard, StreamResponse, Task

__all__ = ["A2AAgent", "RemoteAgentError"]

logger = logging.getLogger("agentloop")

MAX_STATUS_TEXT = 200
CANCEL_TIMEOUT = 10.0


class RemoteAgentError(AgentloopError):
    """A remote A2A agent failed, refused, or cancelled the task, or could not be reached."""


class A2AAgent:
    """A remote A2A agent, by the URL its card is served under, as a managed agent.

    ```python
    remote = A2AAgent("http://127.0.0.1:8001/a2a/research/", name="research",
                      description="Researches a topic on the web.")
    agent = create_async_agent(managed_agents=[remote], model=model, journal="runs.sqlite")
    ```

    Args:
        url: the agent's base URL; its card is read from `{url}/.well-known/agent-card.json`
            at the first call (or by `discover`), and checked: it must offer JSON-RPC.
        name: the name the model calls it by (a Python identifier); by default the last
            segment of the URL's path (`research` above).
        description: what the model is told it does; by default the card's, once fetched
            with `await A2AAgent.discover(url)`, else a generic sentence.
        headers: sent with every request (e.g. `{"Authorization": "Bearer ..."}`).
        timeout: seconds each HTTP request may take to connect and to send each event
            (the remote task itself may run as long as the local task's timeout allows).
    """

    reattaches = True
    """A resumed run reruns an interrupted call: it follows the recorded remote task."""

    def __init__(
        self,
        url: str,
        *,
        name: str | None = None,
        description: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 60.0,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InvalidArgumentsError(f"`url` must be an http(s) URL, received {url!r:.100}.")
        self.url = url if url.endswith("/") else url + "/"
        self.name = name or _name_from(parts.path)
        if not self.name.isidentifier():
            raise InvalidArgumentsError(
                f"`name` must be a Python identifier (the model calls it by it), received "
                f"{self.name!r}."
            )
        self.description = description or (
            f"A remote agent (A2A, at {self.url}). Give it a complete task description."
        )
        self.headers = dict(headers or {})
        self.timeout = timeout
        self.card: AgentCard | None = None
        """The remote agent's card, once fetched and checked."""
        self._card_lock: asyncio.Lock | None = None

    @classmethod
    async def discover(
        cls,
        url: str,
        *,
        name: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 60.0,
    ) -> A2AAgent:
        """Fetch the card first: the agent is described to the model by it (its description
        and skills)."""
        agent = cls(url, name=name, headers=headers, timeout=timeout)
        card = await agent.fetch_card()
        skills = "; ".join(f"{s.name}: {s.description}" for s in card.skills if s.name)
        agent.description = bounded(
            card.description + (f" Skills: {skills}." if skills else ""), 2000
        )
        if name is None:
            agent.name = _name_from(card.name) if card.name else agent.name
        return agent

    # -- the managed-agent protocol ---------------------------------------------------------------

    async def arun(self, task: str, additional_args: Mapping[str, Any] | None = None) -> Any:
        """Send `task` and return the remote agent's answer (no progress reporting)."""
        return await self.arun_in(None, task, additional_args)

    async def arun_in(
        self, context: Any, task: str, additional_args: Mapping[str, Any] | None = None
    ) -> Any:
        """`arun` as the registry calls it, with its `SourceContext` (progress, tracer)."""
        sink = context.progress_sink() if context is not None else None
        card = await self.fetch_card()
        async with self._http() as http:
            client = _client_for(card, http)
            try:
                remote_id = recorded_remote()
                if remote_id is not None:
                    logger.info("`%s`: following remote task %s again", self.name, remote_id)
                    return await self._reattach(client, str(remote_id), sink)
                return await self._send(client, task, additional_args, sink)
            finally:
                await client.close()

    # -- one call -------------------------------------------------------------------------------

    async def _send(
        self, client: Client, task: str, extra: Mapping[str, Any] | None, sink: Any
    ) -> Any:
        from a2a.types.a2a_pb2 import Message, Part, Role, SendMessageRequest

        parts = [Part(text=task)]
        if extra:
            from google.protobuf.json_format import ParseDict
            from google.protobuf.struct_pb2 import Value

            parts.append(Part(data=ParseDict(_json(extra), Value())))
        message = Message(
            role=Role.ROLE_USER, message_id=message_key() or uuid.uuid4().hex, parts=parts
        )
        follow = _Follow(self.name, sink)
        return await follow.run(client, client.send_message(SendMessageRequest(message=message)))

    async def _reattach(self, client: Client, remote_id: str, sink: Any) -> Any:
        from a2a.types.a2a_pb2 import GetTaskRequest, SubscribeToTaskRequest

        follow = _Follow(self.name, sink, remote_id)
        found = await client.get_task(GetTaskRequest(id=remote_id))
        if follow.take_task(found):
            return follow.answer()
        return await follow.run(client, client.subscribe(SubscribeToTaskRequest(id=remote_id)))

    # -- the card and the connection --------------------------------------------------------------

    async def fetch_card(self) -> AgentCard:
        """The remote agent's card (fetched once): it must offer JSON-RPC."""
        if self.card is not None:
            return self.card
        if self._card_lock is None:
            self._card_lock = asyncio.Lock()
        async with self._card_lock:
            if self.card is None:
                from a2a.client import A2ACardResolver
                from a2a.client.errors import AgentCardResolutionError

                async with self._http() as http:
                    try:
                        card = await A2ACardResolver(http, self.url).get_agent_card()
                    except AgentCardResolutionError as exc:
                        raise RemoteAgentError(
                            f"could not read the A2A card of `{self.name}` at {self.url}: {exc}"
                        ) from None
                bindings = {i.protocol_binding for i in card.supported_interfaces}
                if "JSONRPC" not in bindings:
                    raise RemoteAgentError(
                        f"the A2A agent at {self.url} offers {sorted(bindings) or 'no'} "
                        "protocol bindings; agentloop speaks JSONRPC."
                    )
                self.card = card
        assert self.card is not None
        return self.card

    def _http(self) -> httpx.AsyncClient:
        import httpx

        return httpx.AsyncClient(
            headers=self.headers,
            timeout=httpx.Timeout(self.timeout),
            event_hooks={"request": [_propagate_trace]},
        )

    def __repr__(self) -> str:
        return f"A2AAgent({self.url!r}, name={self.name!r})"


class _Follow:
    """One remote task followed to its end: progress from its status, answer from its
    artifacts; the local task's cancellation sends `tasks/cancel`."""

    def __init__(self, name: str, sink: Any, remote_id: str | None = None) -> None:
        self.name = name
        self.sink = sink
        self.remote_id = remote_id
        self.artifacts: dict[str, Any] = {}
        self.state: int | None = None
        self.status_text = ""
        self.updates = 0
        """Status updates seen: the progress figure (an A2A task has no total)."""

    async def run(self, client: Client, events: AsyncIterator[StreamResponse]) -> Any:
        try:
            async for response in events:
                if await self._take(response):
                    return self.answer()
        except asyncio.CancelledError:
            if self.remote_id is not None:
                await _cancel(client, self.remote_id, self.name)
            raise
        except AgentloopError:
            raise
        except Exception as exc:
            raise RemoteAgentError(
                f"the A2A call to `{self.name}` failed: {type(exc).__name__}: "
                f"{bounded(str(exc), 500)}"
            ) from exc
        if self.state is not None and _is_terminal(self.state):
            return self.answer()
        raise RemoteAgentError(
            f"the A2A stream of `{self.name}` ended before its task did (task "
            f"{self.remote_id}, last status: {self.status_text or 'none'})."
        )

    async def _take(self, response: StreamResponse) -> bool:
        """Take one streamed event; True once the task has ended."""
        kind = response.WhichOneof("payload")
        if kind == "task":
            return await self._named(response.task.id) or self.take_task(response.task)
        if kind == "status_update":
            update = response.status_update
            await self._named(update.task_id)
            return self._status(update.status)
        if kind == "artifact_update":
            await self._named(response.artifact_update.task_id)
            self._artifact(response.artifact_update.artifact, response.artifact_update.append)
            return False
        if kind == "message":  # a message-only answer: no task at all
            self.artifacts["message"] = _value_of(response.message.parts)
            self.state = _completed()
            return True
        return False

    async def _named(self, remote_id: str) -> bool:
        """The remote task's id, recorded the first time it is seen (durable first)."""
        if remote_id and self.remote_id is None:
            self.remote_id = remote_id
            await record_remote(remote_id)
        return False

    def take_task(self, task: Task) -> bool:
        for artifact in task.artifacts:
            self._artifact(artifact, append=False)
        return self._status(task.status)

    def _status(self, status: Any) -> bool:
        self.state = int(status.state)
        self.status_text = bounded(
            " ".join(p.text for p in status.message.parts if p.HasField("text")), MAX_STATUS_TEXT
        )
        if self.sink is not None and not _is_terminal(self.state):
            self.updates += 1
            self.sink(TaskProgress(progress=float(self.updates), message=self._shown()))
        return _is_terminal(self.state)

    def _shown(self) -> str:
        state = _state_name(self.state)
        return f"{state}: {self.status_text}" if self.status_text else state

    def _artifact(self, artifact: Any, append: bool) -> None:
        value = _value_of(artifact.parts)
        key = artifact.artifact_id or artifact.name or str(len(self.artifacts))
        previous = self.artifacts.get(key)
        if append and isinstance(previous, str) and isinstance(value, str):
            value = previous + value
        self.artifacts[key] = value

    def answer(self) -> Any:
        """The remote answer: its one artifact's value (or all of them, by id), or raises."""
        if self.state != _completed():
            raise RemoteAgentError(
                f"the remote agent `{self.name}` ended task {self.remote_id} as "
                f"{_state_name(self.state)}" + (f": {self.status_text}" if self.status_text else "")
            )
        if len(self.artifacts) == 1:
            return next(iter(self.artifacts.values()))
        return dict(self.artifacts) if self.artifacts else self.status_text


async def _cancel(client: Client, remote_id: str, name: str) -> None:
    """Send `tasks/cancel`, bounded and shielded (the caller is being cancelled)."""
    from a2a.types.a2a_pb2 import CancelTaskRequest

    sending = asyncio.ensure_future(client.cancel_task(CancelTaskRequest(id=remote_id)))
    try:
        await asyncio.wait_for(asyncio.shield(sending), CANCEL_TIMEOUT)
    except BaseException as exc:  # the cancel is best effort: log and go on cancelling
        if not sending.done():
            sending.cancel()
        with contextlib.suppress(BaseException):
            await sending
        if not isinstance(exc, Exception) and not isinstance(exc, asyncio.CancelledError):
            raise
        logger.warning("`%s`: cancelling remote task %s failed: %r", name, remote_id, exc)


def _client_for(card: AgentCard, http: httpx.AsyncClient) -> Client:
    from a2a.client import ClientConfig, ClientFactory

    streaming = bool(card.capabilities.streaming)
    return ClientFactory(ClientConfig(streaming=streaming, httpx_client=http)).create(card)


async def _propagate_trace(request: httpx.Request) -> None:
    """Put the current trace context (the local task's span) in the request's headers."""
    from opentelemetry.propagate import inject

    inject(request.headers)


def _value_of(parts: Any) -> Any:
    """A text part as a string, a data part as its JSON value (several: a list)."""
    from google.protobuf.json_format import MessageToDict

    values: list[Any] = []
    for part in parts:
        if part.HasField("text"):
            values.append(part.text)
        elif part.HasField("data"):
            values.append(_whole(MessageToDict(part.data)))
        elif part.HasField("url"):
            values.append(part.url)
    if len(values) == 1:
        return values[0]
    return values


def _whole(value: Any) -> Any:
    """JSON numbers travel as doubles in A2A's data parts: whole ones come back as ints."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, list):
        return [_whole(v) for v in value]
    if isinstance(value, dict):
        return {k: _whole(v) for k, v in value.items()}
    return value


def _json(value: Mapping[str, Any]) -> dict[str, Any]:
    from ..._text import json_value

    shown = json_value(dict(value))
    return shown if isinstance(shown, dict) else {"value": shown}


def _is_terminal(state: int) -> bool:
    from a2a.types.a2a_pb2 import TaskState

    return state in (
        TaskState.TASK_STATE_COMPLETED,
        TaskState.TASK_STATE_FAILED,
        TaskState.TASK_STATE_CANCELED,
        TaskState.TASK_STATE_REJECTED,
        TaskState.TASK_STATE_INPUT_REQUIRED,
        TaskState.TASK_STATE_AUTH_REQUIRED,
    )


def _completed() -> int:
    from a2a.types.a2a_pb2 import TaskState

    return int(TaskState.TASK_STATE_COMPLETED)


def _state_name(state: int | None) -> str:
    from a2a.types.a2a_pb2 import TaskState

    if state is None:
        return "unknown"
    name: str = TaskState.Name(state)
    return name.removeprefix("TASK_STATE_").lower()


def _name_from(text: str) -> str:
    segment = next((s for s in reversed(text.split("/")) if s), "")
    name = re.sub(r"\W", "_", segment).strip("_") or "remote_agent"
    return "_" + name if name[0].isdigit() else name
