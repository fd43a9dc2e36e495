"""The live web view: one small page (plain HTML/JS/CSS shipped in the package, no build step,
no CDN) that starts a run and shows its tasks, timeline, model steps and answer live, read from
the run's server-sent events (`agentloop.asgi.sse_response`).

`create_web_app({...})` is a Starlette app (mount it in FastAPI, or serve it with uvicorn);
`agentloop demo --web` serves it for the demo scenarios. Needs `pip install "agentloop-smol[web]"`.
"""

from .app import LOOPBACK_HOSTS, WebScenario, create_web_app

__all__ = ["LOOPBACK_HOSTS", "WebScenario", "create_web_app"]
