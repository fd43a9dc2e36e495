"""An agentloop agent behind a FastAPI endpoint.

The agent is created once, at import time (no event loop is running yet; it binds to the server's
loop on first use), and shared by every request: concurrent `await agent.arun(...)` calls are
isolated from each other, each with its own controller, memory and tasks. The handler never
blocks the event loop, so one worker serves many agent runs at once.

Needs FastAPI and uvicorn (`pip install agentloop-smol fastapi uvicorn`). Run it with either of::

    uvicorn examples.fastapi_app:app
    python examples/fastapi_app.py

then::

    curl -X POST 127.0.0.1:8000/run -H 'content-type: application/json' \\
         -d '{"task": "What is the weather in our four offices?"}'
    curl -N '127.0.0.1:8000/run/stream?task=Weather+please'   # the run's events, as SSE
    curl 127.0.0.1:8000/stats
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from pydantic import BaseModel

from agentloop import create_async_agent
from agentloop.asgi import ClientDisconnected, cancel_on_disconnect, sse_response
from agentloop.testing import ScriptedModel

# -- a tool ---------------------------------------------------------------------------------------

_FORECASTS = {"Paris": "18C, light rain", "Tokyo": "24C, sunny", "Lagos": "31C, humid"}


async def get_forecast(city: str) -> str:
    """Today's weather forecast for one city (an async call to a slow weather API).

    Args:
        city: the city's name, e.g. "Paris".
    """
    await asyncio.sleep(1.0)  # the API's latency; async tools run on the loop, no thread used
    return f"{city}: {_FORECASTS.get(city, '20C, cloudy')}"


# -- the agent, created at import time ------------------------------------------------------------

# NOT an LLM: a ScriptedModel replies with these steps in order, so the app runs offline and
# answers the same way every time. In production, pass a smolagents model (e.g. LiteLLMModel).
# One model serves every concurrent request: each run reads its own turn from its own conversation,
# and each run has its own task ids (every run may use `forecast_Paris` without a clash).
SCRIPT = [
    """
cities = ["Paris", "Tokyo", "Lagos", "Lima"]
task_ids = [
    submit_task("tool", "get_forecast", {"city": city}, task_id=f"forecast_{city}")
    for city in cities
]
wait_for_tasks(task_ids, max_wait_time=30)
results = get_task_results(task_ids)
final_answer("; ".join(str(results[task_id]) for task_id in task_ids))
""",
]

agent = create_async_agent(tools=[get_forecast], model=ScriptedModel(SCRIPT), max_workers=3)


# -- the app --------------------------------------------------------------------------------------


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    await agent.aclose()  # cancels and settles anything still running, on the server's loop


app = FastAPI(title="agentloop example", lifespan=lifespan)


class RunRequest(BaseModel):
    task: str


class RunResponse(BaseModel):
    answer: str


@app.post("/run", response_model=None)
async def run(body: RunRequest, request: Request) -> RunResponse | Response:
    """One run; if the client leaves first, the run and its tasks are cancelled."""
    try:
        answer = await cancel_on_disconnect(request, agent.arun(body.task))
    except ClientDisconnected:
        return Response(status_code=499)
    return RunResponse(answer=str(answer))


@app.get("/run/stream")
async def run_stream(task: str) -> Response:
    """The run's events as server-sent events, ending with the final answer."""
    return sse_response(agent.astream(task))


@app.get("/stats")
async def stats() -> dict[str, Any]:
    return agent.task_manager.get_statistics()


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=8000)
