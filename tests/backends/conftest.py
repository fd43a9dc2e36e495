"""One local Ray instance for the whole module (starting Ray takes seconds)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from .worker_tracing import SPAN_FILE_ENV  # noqa: E402

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
