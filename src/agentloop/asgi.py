"""Starlette / FastAPI helpers: stream a run as server-sent events, and cancel a plain run when
its client disconnects.

Install with `pip install "agentloop-smol[asgi]"` (Starlette; FastAPI users have it already).

```python
from agentloop.asgi import cancel_on_disconnect, sse_response

@app.get("/runs/stream")
async def stream(task: str):
    return sse_response(agent.astream(task))           # text/event-stream, ends with the run

@app.post("/runs")
async def run(body: RunRequest, request: Request):
    answer = await cancel_on_disconnect(request, agent.arun(body.task))
    return {"answer": answer}
```

Starlette does not cancel a handler when its client leaves; `cancel_on_disconnect` races the
run against the disconnect, so a departed client's run and all its tasks are cancelled. An SSE
response ends its stream (and so cancels the run) when the client disconnects, because
Starlette cancels the response's body iterator then.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import StreamingResponse

from .agent.stream import RunStream
from .errors import AgentloopError

__all__ = ["ClientDisconnected", "cancel_on_disconnect", "sse_events", "sse_response"]

T = TypeVar("T")

KEEP_ALIVE_SECONDS = 15.0


class ClientDisconnected(AgentloopError):
    """The client went away before the run finished; the run was cancelled."""


async def sse_events(
    stream: RunStream, *, keep_alive: float = KEEP_ALIVE_SECONDS
) -> AsyncIterator[str]:
    """The stream's events as SSE frames (`id:` the event's seq, `event:` its kind, `data:`
    its JSON), with a `: keep-alive` comment after `keep_alive` quiet seconds. Ends after the
    final event; closing it (a disconnect) closes the stream, which cancels the run."""
    async with stream:
        events = stream.__aiter__()
        pending: asyncio.Task[Any] | None = None
        try:
            while True:
                pending = pending or asyncio.ensure_future(events.__anext__())
                done, _ = await asyncio.wait({pending}, timeout=keep_alive)
                if not done:
                    yield ": keep-alive\n\n"
                    continue
                try:
                    event = pending.result()
                except StopAsyncIteration:
                    return
                finally:
                    pending = None
                data = json.dumps(event.to_dict(), separators=(",", ":"), allow_nan=False)
                yield f"id: {event.seq}\nevent: {event.kind.value}\ndata: {data}\n\n"
        finally:
            if pending is not None:
                pending.cancel()


def sse_response(stream: RunStream, *, keep_alive: float = KEEP_ALIVE_SECONDS) -> StreamingResponse:
    """A ready `text/event-stream` response for `stream` (no caching, no proxy buffering)."""
    return StreamingResponse(
        sse_events(stream, keep_alive=keep_alive),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def cancel_on_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Await `work` (e.g. `agent.arun(task)`), cancelling it if the client disconnects first;
    then raises `ClientDisconnected`. Replaces the hand-written race in docs/reliability.md."""
    running = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({running, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not running.done():
            running.cancel()
        await asyncio.wait({running})
    if running.cancelled() and gone.done() and not gone.cancelled():
        raise ClientDisconnected("the client disconnected; the run was cancelled.")
    return running.result()


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass
