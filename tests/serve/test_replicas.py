"""Two `agentloop serve` processes on one journal: a run started on A, A SIGKILLed mid-run, B
resumes it at startup, and the client that reconnects to B with `Last-Event-ID` sees every event
exactly once, in order, ending with the answer. SQLite here; PostgreSQL too when
`AGENTLOOP_POSTGRES_DSN` is set (`nox -s postgres`)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from .. import warm
from .conftest import read_events

pytestmark = pytest.mark.timeout(90)

REPO = Path(__file__).resolve().parents[2]
PRELOAD = ("agentloop.agent.async_agent", "agentloop.serve", "agentloop.testing", "uvicorn")


@pytest.fixture(params=["sqlite", "postgres"])
def journal(request: Any, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "runs.sqlite")
    dsn = os.environ.get("AGENTLOOP_POSTGRES_DSN")
    if not dsn:
        pytest.skip("needs a PostgreSQL server: run `nox -s postgres`")
    return dsn


async def _start(journal: str) -> tuple[asyncio.subprocess.Process, str]:
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONUNBUFFERED": "1"}
    args = ["-m", "agentloop", "serve", "examples.serve_app:make_agent", "--port", "0"]
    process = await asyncio.create_subprocess_exec(
        *warm.python(*args, "--journal", journal, env=env, preload=PRELOAD),
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    banner = (await asyncio.wait_for(process.stderr.readline(), 30)).decode()
    found = re.search(r"http://127\.0\.0\.1:(\d+)/", banner)
    assert found, banner
    return process, f"http://127.0.0.1:{found[1]}"


async def _until(client: httpx.AsyncClient, run_id: str, last: int, kind: str) -> list[Any]:
    """Events after `last`, one at a time, up to the first of `kind`."""
    found: list[Any] = []
    while not found or found[-1]["event"] != kind:
        found += await read_events(
            client, run_id, last=found[-1]["id"] if found else last, stop_after=1
        )
    return found


async def test_a_run_survives_its_server_and_its_stream_resumes_on_another(journal: str) -> None:
    a, url_a = await _start(journal)
    b = None
    try:
        async with httpx.AsyncClient(base_url=url_a, timeout=20) as client:
            started = await client.post("/api/runs", json={"task": "research"})
            run_id = started.json()["run"]["run_id"]
            seen = await _until(client, run_id, 0, "task_started")
        a.send_signal(signal.SIGKILL)
        await a.wait()
        b, url_b = await _start(journal)
        async with httpx.AsyncClient(base_url=url_b, timeout=20) as client:
            rest = await _until(client, run_id, seen[-1]["id"], "approval_requested")
            decided = await client.post(
                f"/api/runs/{run_id}/approvals/publish", json={"approved": True}
            )
            assert decided.status_code == 200, decided.text
            rest += await read_events(client, run_id, last=rest[-1]["id"])
            whole = await read_events(client, run_id, last=0)
    finally:
        for process in (a, b):
            if process is not None and process.returncode is None:
                process.send_signal(signal.SIGTERM)
                await process.wait()
    ids = [f["id"] for f in seen + rest]
    assert ids == [f["id"] for f in whole]  # every event once, in order, across two servers
    kinds = [f["event"] for f in whole]
    assert "run_resumed" in kinds and kinds[-1] == "final_answer"
    answer = whole[-1]["data"]["answer"]
    assert answer["published"].startswith("published") and len(answer["sources"]) == 3
