"""`agentloop demo --web`, as a user runs it: a subprocess serving the web view on 127.0.0.1,
read with httpx, stopped with Ctrl-C (SIGINT)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONUNBUFFERED": "1"}

pytestmark = pytest.mark.timeout(60)


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "agentloop", "demo", "--web", *args],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _stop(server: subprocess.Popen[str]) -> tuple[int, str]:
    server.send_signal(signal.SIGINT)
    try:
        output, _ = server.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()
        output, _ = server.communicate()
        output += "\n[test] killed: no exit within 15 s of SIGINT"
    return server.returncode, output


def test_demo_web_prints_the_url_serves_a_run_and_stops_on_ctrl_c() -> None:
    server = _start("sources", "--port", "0")
    try:
        assert server.stdout is not None
        banner = server.stdout.readline() + server.stdout.readline()  # the URL is on line two
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", banner)
        assert match, banner
        # The socket listens before the URL is printed: no readiness polling is needed.
        with httpx.Client(base_url=match[0], timeout=20) as client:
            page = client.get("/")
            scenarios = client.get("/scenarios").json()
            stream = client.get("/runs/stream", params={"scenario": "sources"})
    finally:
        code, output = _stop(server)

    assert "scripted planner" in banner
    assert page.status_code == 200 and "scripted planner" in page.text
    assert [s["name"] for s in scenarios] == ["sources"]  # the scenario chosen on the command line
    last = stream.text.strip().split("\n\n")[-1]
    assert last.splitlines()[1] == "event: final_answer", last
    assert "integrated report" in json.loads(last.splitlines()[2].removeprefix("data: "))["answer"]
    assert code == 0, output
    assert "server stopped" in output and "Traceback" not in output, output


def test_demo_web_on_a_port_in_use_says_how_to_pick_another() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "agentloop", "demo", "--web", "--port", str(port)],
            cwd=ROOT,
            env=ENV,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    assert result.returncode == 1, result.stdout + result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stdout
    assert "--port 0" in result.stdout


def test_without_the_web_extra_the_hint_names_an_install_command_that_works(
    tmp_path: Path,
) -> None:
    """Run as a user without uvicorn would: the hint keeps its `[web]` (rich once read it as
    markup and printed `pip install "agentloop"`, someone else's package), and names this
    project's distribution and an extra it declares."""
    blocker = tmp_path / "uvicorn.py"
    blocker.write_text("raise ImportError('No module named uvicorn (blocked by the test)')\n")
    env = {**ENV, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-m", "agentloop", "demo", "--web"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    printed = " ".join(done.stdout.split())
    match = re.search(r'pip install "([\w-]+)\[(\w+)\]"', printed)
    assert match, printed
    with open(ROOT / "pyproject.toml", "rb") as file:
        project = tomllib.load(file)["project"]
    assert match.group(1) == project["name"] != "agentloop"  # `agentloop` on PyPI is not ours
    assert match.group(2) in project["optional-dependencies"]
    web = project["optional-dependencies"]["web"]
    assert {"uvicorn", "starlette"} <= {re.split(r"[<>=\[ ]", spec)[0] for spec in web}
