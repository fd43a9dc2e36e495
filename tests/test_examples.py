"""Every example runs the way a user runs it: as a script, under pytest, or behind uvicorn.

The processes are forks of a warm interpreter that has imported agentloop's agent, smolagents,
FastAPI and uvicorn once (`tests.warm`): each example pays for its own work, not ~1-2 s of
imports.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from . import warm

REPO = Path(__file__).resolve().parents[1]
PRELOAD = ("agentloop.agent.async_agent", "agentloop.testing", "fastapi", "uvicorn", "httpx")

FORECAST_ANSWER = "Paris: 18C, light rain; Tokyo: 24C, sunny; Lagos: 31C, humid; Lima: 20C, cloudy"
"""What `examples/fastapi_app.py`'s scripted agent answers (four 1 s tool calls, merged)."""


def _env() -> dict[str, str]:
    return {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONUNBUFFERED": "1"}


def _python(*args: str) -> list[str]:
    """`python ARGS`, forked from the warm interpreter."""
    return warm.python(*args, env=_env(), preload=PRELOAD)


def _run(*args: str, timeout: float = 25, cold: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args] if cold else _python(*args),
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _explain(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit code {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"


# -- examples/basic_usage.py ----------------------------------------------------------------------


def test_basic_usage_script() -> None:
    proc = _run("examples/basic_usage.py")

    assert proc.returncode == 0, _explain(proc)
    lines = proc.stdout.splitlines()
    assert lines[:6] == [
        "Report",
        "- inventory: 2975 rows, 2 anomalies",
        "- sales_2023: 12840 rows, 3 anomalies",
        "- sales_2024: 15112 rows, 1 anomalies",
        "- support_tickets: 4310 rows, 0 anomalies",
        "- web_traffic: 98205 rows, 7 anomalies",
    ], _explain(proc)
    [stats_line] = [line for line in lines if line.startswith("statistics: ")]
    stats = json.loads(stats_line.removeprefix("statistics: "))
    assert stats["total_submitted"] == 6  # five analyses and the report
    assert stats["total_completed"] == 6
    assert stats["total_failed"] == 0
    assert (stats["pending"], stats["running"]) == (0, 0)
    assert stats["available_tools"] == ["analyze_dataset", "write_report"]


# -- examples/test_agent_example.py -------------------------------------------------------------


def test_durable_run_resumes_after_its_process_dies(tmp_path: Path) -> None:
    journal = str(tmp_path / "runs.sqlite")
    crashed = _run("examples/durable_run.py", "--journal", journal, "--crash")
    assert crashed.returncode == 1, _explain(crashed)
    assert "charging 750 cents" in crashed.stderr and "answer" not in crashed.stderr

    resumed = _run("examples/durable_run.py", "--journal", journal)

    assert resumed.returncode == 0, _explain(resumed)
    assert "fetching" not in resumed.stderr  # step 1's tasks did not run again
    assert "charging 750 cents" in resumed.stderr  # the idempotent charge did
    assert (
        "answer: charged 750 for order-42: receipt for order-42 (resumed: True, steps "
        "replayed: 2, tasks replayed: 4, rerun: 1)"
    ) in resumed.stderr, _explain(resumed)
    listed = _run("-m", "agentloop", "runs", "--journal", journal, "--json")
    assert listed.returncode == 0, _explain(listed)
    assert json.loads(listed.stdout)["status"] == "completed"


def test_agent_example_tests_pass() -> None:
    # cold: pytest rewrites the asserts of the plugins it loads, so they must not be imported yet
    proc = _run(
        "-m", "pytest", "examples/test_agent_example.py", "-q", "-p", "no:cacheprovider", cold=True
    )

    assert proc.returncode == 0, _explain(proc)
    assert re.search(r"^3 passed in ", proc.stdout, flags=re.MULTILINE), _explain(proc)


# -- examples/fastapi_app.py --------------------------------------------------------------------


def test_fastapi_app_agent_is_created_without_a_running_loop() -> None:
    code = textwrap.dedent(
        """
        import asyncio

        import examples.fastapi_app as example  # module scope: no event loop is running here

        async def main():
            try:
                return await example.agent.arun("What is the weather in our offices?")
            finally:
                await example.agent.aclose()

        print(asyncio.run(main()))
        stats = example.agent.task_manager.get_statistics()
        print(stats["total_completed"], stats["pending"], stats["running"])
        """
    )
    proc = _run("-c", code)

    assert proc.returncode == 0, _explain(proc)
    assert proc.stdout.splitlines() == [FORECAST_ANSWER, "4 0 0"], _explain(proc)


def test_fastapi_app_as_a_script_starts_uvicorn_on_localhost() -> None:
    # `python examples/fastapi_app.py`, with uvicorn.run replaced so no port is taken.
    code = textwrap.dedent(
        """
        import runpy

        import uvicorn

        calls = []
        uvicorn.run = lambda app, **options: calls.append((app, options))
        namespace = runpy.run_path("examples/fastapi_app.py", run_name="__main__")
        [(app, options)] = calls
        print(app is namespace["app"], sorted(options.items()))
        """
    )
    proc = _run("-c", code)

    assert proc.returncode == 0, _explain(proc)
    assert proc.stdout.strip() == "True [('host', '127.0.0.1'), ('port', 8000)]", _explain(proc)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _wait_until_serving(
    client: httpx.AsyncClient, server: asyncio.subprocess.Process, path: str = "/stats"
) -> None:
    """Readiness only: poll `path` with short requests until the server answers (bounded)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if server.returncode is not None:
            pytest.fail(f"uvicorn exited early with code {server.returncode}")
        try:
            response = await client.get(path, timeout=0.5)
        except httpx.TransportError:
            await asyncio.sleep(0.05)
            continue
        if response.status_code == 200:
            return
    pytest.fail("uvicorn did not start serving within 20 s")


async def _stop(server: asyncio.subprocess.Process) -> str:
    """Graceful shutdown (SIGTERM runs the lifespan's `aclose`); kill only if it hangs."""
    if server.returncode is None:
        server.terminate()
    try:
        output, _ = await asyncio.wait_for(server.communicate(), timeout=15)
    except TimeoutError:
        server.kill()
        output, _ = await server.communicate()
        output += b"\n[test] uvicorn did not stop within 15 s after SIGTERM and was killed"
    return output.decode(errors="replace")


@pytest.mark.timeout(60)
async def test_fastapi_app_serves_concurrent_runs() -> None:
    port = _free_port()
    server = await asyncio.create_subprocess_exec(
        *_python("-m", "uvicorn", "examples.fastapi_app:app"),
        *("--host", "127.0.0.1", "--port", str(port)),
        cwd=REPO,
        env=_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=15) as client:
            await _wait_until_serving(client, server)
            started = time.perf_counter()
            responses = await asyncio.gather(
                *(client.post("/run", json={"task": f"Weather report #{i}"}) for i in range(12))
            )
            elapsed = time.perf_counter() - started
            async with client.stream("GET", "/run/stream", params={"task": "Weather"}) as sse:
                frames = [line async for line in sse.aiter_lines() if line.startswith("event: ")]
            stats_response = await client.get("/stats")
    finally:
        log = await _stop(server)

    where = f"\n--- uvicorn output\n{log}"
    assert [r.status_code for r in responses] == [200] * 12, [r.text for r in responses]
    assert [r.json() for r in responses] == [{"answer": FORECAST_ANSWER}] * 12
    # Each run waits on four 1 s tool calls: 12 runs in sequence would take 12 s (48 s if the
    # tool calls ran one by one too); concurrent runs with concurrent tasks take about 1 s.
    assert 1.0 <= elapsed < 4.0, f"12 concurrent runs took {elapsed:.2f}s{where}"
    assert frames[0] == "event: run_started" and frames[-1] == "event: final_answer", frames
    assert frames.count("event: task_completed") == 4, frames
    stats = stats_response.json()
    assert (stats["pending"], stats["running"]) == (0, 0), f"{stats}{where}"
    assert (stats["total_submitted"], stats["total_completed"]) == (52, 52), f"{stats}{where}"
    assert stats["open_scopes"] == 0, f"{stats}{where}"
    # uvicorn re-raises the SIGTERM it handled once shutdown is complete.
    assert server.returncode in (0, -signal.SIGTERM), where
    assert "Application shutdown complete." in log, where
    assert "Traceback" not in log, where


# -- examples/web_app.py --------------------------------------------------------------------------


def _sse_frames(body: str) -> list[tuple[int, str, dict[str, object]]]:
    """(id, event, data) of each server-sent event in `body`."""
    frames = []
    for frame in body.strip().split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in frame.splitlines() if not line.startswith(":")
        )
        frames.append((int(fields["id"]), fields["event"], json.loads(fields["data"])))
    return frames


@pytest.mark.timeout(60)
async def test_web_app_script_serves_the_page_and_streams_a_run() -> None:
    port = _free_port()
    server = await asyncio.create_subprocess_exec(
        *_python("examples/web_app.py", "--port", str(port)),
        cwd=REPO,
        env=_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        assert server.stdout is not None
        first = await asyncio.wait_for(server.stdout.readline(), timeout=20)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=15) as client:
            await _wait_until_serving(client, server, path="/health")
            page = await client.get("/")
            script = await client.get("/static/app.js")
            scenarios = (await client.get("/scenarios")).json()
            stream = await client.get("/runs/stream", params={"scenario": "sources"})
    finally:
        log = await _stop(server)

    where = f"\n--- uvicorn output\n{log}"
    assert first.decode().strip() == f"agentloop live web view: http://127.0.0.1:{port}/", where
    assert page.status_code == 200 and '<table id="tasks">' in page.text, where
    assert script.status_code == 200 and "EventSource" in script.text, where
    assert [s["name"] for s in scenarios] == ["batch", "sources", "ecommerce", "quarterly"]
    assert stream.headers["content-type"].startswith("text/event-stream"), where
    frames = _sse_frames(stream.text)
    ids = [frame_id for frame_id, _, _ in frames]
    kinds = [kind for _, kind, _ in frames]
    assert ids == sorted(ids) and len(set(ids)) == len(ids), ids
    assert kinds[0] == "run_started" and kinds[-1] == "final_answer", kinds
    assert kinds.count("task_completed") == 5, kinds  # four sources, then the integration
    assert "integrated report" in str(frames[-1][2]["answer"]), frames[-1]
    assert "Application shutdown complete." in log, where
    assert "Traceback" not in log, where


# -- examples/mcp_app.py --------------------------------------------------------------------------


def test_mcp_app_script_calls_an_mcp_servers_tools_in_parallel() -> None:
    pytest.importorskip("mcp", reason="the `mcp` extra is not installed")
    proc = _run("examples/mcp_app.py", timeout=60)

    assert proc.returncode == 0, _explain(proc)
    lines = proc.stdout.splitlines()
    assert lines[:2] == ["tools: forecast(city: string)", FORECAST_ANSWER], _explain(proc)
    seconds = float(re.fullmatch(r"4 forecasts of ~0.9 s each took (\d+\.\d) s", lines[2])[1])
    assert seconds < 3.6, "the four calls did not run in parallel"  # 3.6 s one after another


# -- examples/model_features.py -------------------------------------------------------------------


def test_model_features_streams_words_falls_back_and_returns_the_typed_quote() -> None:
    proc = _run("examples/model_features.py")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert 'price = price_of("widget")' in out  # the model's words, as streamed
    assert out.count("provider-a/large failed, using provider-b/large") == 3
    assert "quote: Quote(product='widget', units=40, unit_price=2.5) (a Quote)" in out
    assert "total: 100.00" in out


# -- examples/a2a_app.py --------------------------------------------------------------------------


def test_a2a_app_delegates_to_a_remote_agent_over_a2a() -> None:
    pytest.importorskip("a2a", reason="the `a2a` extra is not installed")
    proc = _run("examples/a2a_app.py", timeout=60)

    assert proc.returncode == 0, _explain(proc)
    assert proc.stdout.splitlines() == [
        "card: adder, skills: ['double']",
        "the remote adder says 12",
    ], _explain(proc)
