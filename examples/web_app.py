"""The live web view inside a FastAPI app: start a run from the page and watch its tasks.

`agentloop.web.create_web_app` is a Starlette app serving one page (plain HTML/JS/CSS shipped
in the package) and `GET /runs/stream?scenario=...`, a run's events as server-sent events. Here
it is mounted in a FastAPI app with the offline demo's four scenarios, each an agent driven by
a scripted planner (no LLM, no network). Put your own agents in the mapping to watch them.

Needs the `web` extra and FastAPI (`pip install "agentloop-smol[web]" fastapi`). Run it with::

    python examples/web_app.py            # or: --port N
    uvicorn examples.web_app:app

and open the URL it prints. Closing the page cancels the run and all its tasks.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from agentloop.web import create_web_app
from agentloop.web.demo import demo_scenarios

# name -> WebScenario(agent=..., task=default task text, title=...); a plain AsyncAgent works
# too. Created at import time: the agents bind to the server's event loop on first use.
scenarios = demo_scenarios()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    for scenario in scenarios.values():  # a mounted app's lifespan does not run: close here
        await scenario.agent.aclose()


app = FastAPI(title="agentloop live web view", lifespan=lifespan)


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


app.mount("/", create_web_app(scenarios, title="agentloop: a live run (scripted planner)"))


if __name__ == "__main__":
    import uvicorn

    parser = argparse.ArgumentParser(description="serve the live web view on 127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    port = parser.parse_args().port
    print(f"agentloop live web view: http://127.0.0.1:{port}/", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=port)
