"""One local Ray instance for these tests, which run in `nox -s ray` (`AGENTLOOP_RAY=1`).

Ray is a real system: a local instance (GCS, raylet, dashboard agent, worker processes) takes
4-14 s to start on this 2-core machine, `import ray` 1.5 s, and its processes kept taking
CPU for the rest of the default suite (~7 % of a core). So the default run skips them, saying
how to run them, and CI runs them in their own session.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .worker_tracing import SPAN_FILE_ENV

ENABLED = os.environ.get("AGENTLOOP_RAY") == "1"
SKIP_REASON = "Ray: set AGENTLOOP_RAY=1 (or run `nox -s ray`)"
ROOT = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/backends/" in str(item.fspath):
            item.add_marker(pytest.mark.ray)


@pytest.fixture(scope="session")
def worker_span_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ray") / "worker_spans.jsonl"


@pytest.fixture(scope="session")
def ray_cluster(worker_span_file: Path) -> Iterator[None]:
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_ACCEPT_USAGE_STATS_PROMPT", "0")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={
            "env_vars": {
                "PYTHONPATH": str(ROOT),
                SPAN_FILE_ENV: str(worker_span_file),
                "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            },
            "worker_process_setup_hook": "tests.backends.worker_tracing.setup",
        },
    )
    yield
    ray.shutdown()
