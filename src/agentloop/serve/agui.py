"""AG-UI for any Starlette or FastAPI app: read a `RunAgentInput`, answer with a run's events
as an AG-UI event stream (docs/protocols.md has the mapping).

Install with `pip install "agentloop-smol[agui]"` (the `ag-ui-protocol` package).

```python
from agentloop.serve.agui import AguiInputError, agui_response, read_run_input, task_of

@app.post("/agui")
async def agui(request: Request) -> Response:
    try:
        run_input = await read_run_input(request)
    except AguiInputError as error:
        return error.response()                          # 422 {"error": "..."}, no traceback
    return agui_response(agent.astream(task_of(run_input)), run_input)
```

This helper streams one run per request; approvals show as `CUSTOM` events (the app decides
them with `stream.approve`). The run service (`create_app`) goes further: a thread is a
session, approvals are AG-UI interrupts answered by the next input's `resume`, and a client
reconnects with `Last-Event-ID` (`POST /api/agents/{agent}/agui`).

Why this module is in `agentloop.serve` and not `agentloop.asgi`: the mapping is shared with
the service, and `asgi` sits below `serve` in the layers (docs/architecture.md).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse

from ..agent.stream import RunStream
from ..errors import AgentloopError
from ._agui_map import AguiMapper, Wire

if TYPE_CHECKING:
    from ag_ui.core import RunAgentInput

__all__ = [
    "AguiInputError",
    "agui_response",
    "encode",
    "read_run_input",
    "run_input_of",
    "task_of",
]

MAX_INPUT_BYTES = 256 * 1024
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class AguiInputError(AgentloopError):
    """A request that is not a valid AG-UI `RunAgentInput` (or asks for nothing to do)."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def response(self) -> JSONResponse:
        return JSONResponse({"error": self.message}, self.status)


def run_input_of(value: Any) -> RunAgentInput:
    """`value` (parsed JSON) validated as `ag_ui.core.RunAgentInput`, or `AguiInputError`
    naming the first few problems (bounded: no echo of a huge input)."""
    from ag_ui.core import RunAgentInput
    from pydantic import ValidationError

    if not isinstance(value, dict):
        raise AguiInputError("an AG-UI input is a JSON object (RunAgentInput).")
    try:
        parsed = RunAgentInput.model_validate(value)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise AguiInputError(f"not an AG-UI RunAgentInput: {problems[:1000]}") from None
    for name, text in (("threadId", parsed.thread_id), ("runId", parsed.run_id)):
        if not 0 < len(text) <= 200:
            raise AguiInputError(f"`{name}` must be a string of 1 to 200 characters.")
    return parsed


async def read_run_input(request: Request, *, max_bytes: int = MAX_INPUT_BYTES) -> RunAgentInput:
    """The request's body as a `RunAgentInput` (read up to `max_bytes`; 413 beyond)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise AguiInputError(f"the body is over {max_bytes} bytes.", 413)
    try:
        value = json.loads(body or b"null", parse_constant=_no_constant)
    except ValueError as exc:
        raise AguiInputError(f"the body is not JSON: {str(exc)[:200]}", 400) from None
    return run_input_of(value)


def task_of(run_input: RunAgentInput) -> str:
    """The task of a run: the text of the input's last user message (a session keeps the
    conversation before it)."""
    for message in reversed(run_input.messages):
        if getattr(message, "role", None) != "user":
            continue
        content = getattr(message, "content", "")
        if isinstance(content, str):
            text = content
        else:
            text = "\n".join(p.text for p in content if getattr(p, "type", None) == "text")
        if text.strip():
            return text
    raise AguiInputError("the input has no user message with text: nothing to run.", 400)


def encode(events: Iterable[Wire], event_id: int = 0) -> str:
    """AG-UI events as SSE text, as `ag_ui.encoder.EventEncoder` writes them; with an
    `event_id`, the last frame carries it as its `id:` (a reconnect resumes after it)."""
    frames = [f"data: {e}\n\n" for e in events]
    if event_id and frames:
        frames[-1] = f"id: {event_id}\n{frames[-1]}"
    return "".join(frames)


async def agui_events(stream: RunStream[Any], run_input: RunAgentInput) -> AsyncIterator[str]:
    """`stream`'s events as AG-UI SSE text, under the input's thread and run ids; closing it
    closes the stream (which cancels the run)."""
    mapper = AguiMapper(
        key=run_input.run_id,
        thread_id=run_input.thread_id,
        run_id=run_input.run_id,
        interrupts=False,
    )
    yield encode(mapper.start_run(run_input.run_id))
    async with stream:
        async for event in stream:
            data = event.to_dict()
            yield encode(mapper.feed(data), 0 if event.kind.value == "model_delta" else event.seq)
            if mapper.finished:
                return
    if not mapper.finished:
        yield encode(mapper.unfinished())


def agui_response(stream: RunStream[Any], run_input: RunAgentInput) -> StreamingResponse:
    """A ready `text/event-stream` response of `stream` as AG-UI events."""
    return StreamingResponse(
        agui_events(stream, run_input), media_type="text/event-stream", headers=SSE_HEADERS
    )


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
