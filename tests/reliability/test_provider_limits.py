"""The issue's measurement: many runs of one agent against a provider that enforces a real
rate limit, all finishing with no failed call, at the limit's throughput.

The stub (`tests/cli/llm_stub.py`) admits at most `LIMIT` requests in any sliding window of
`WINDOW` seconds and answers 429 with `retry-after-ms` past it, as a provider does per minute;
the agent is given `ModelLimits(requests_per_minute=LIMIT * 60 / WINDOW)`: the same limit on a
faster clock. Every run makes one model call (a `LiteLLMModel`, through litellm and the openai
SDK) and answers. Checked: every run answers (no call failed for good), the throughput the stub
admitted is within 10% of its limit (20% for the default run's small load, see `TOLERANCE`),
the stub rarely had to refuse (the calls were paced, not sent and retried), and the last run to
arrive is not starved (every run ends within the time the whole load takes at the limit, plus a
margin).

`nox -s provider_limits` runs 500 runs (`AGENTLOOP_PROVIDER_RUNS=500`, ~15 s at 40 requests a
second); the default suite runs a smaller load (~1 s). The limit is set below what one process
of agentloop + litellm reaches on 2 shared cores (~75 runs a second), so the provider, not the
client, is the bottleneck being measured. It needs that CPU: run beside another heavy job on
the same 2 cores (a full test run), the 500 runs reached 67% of the limit, the client's own
pace, with 100 refusals from a loop too busy to send on time.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time

import litellm  # here, not in the test: a cold import takes seconds
import pytest
from smolagents import LiteLLMModel

from agentloop import ModelLimits, create_async_agent
from agentloop.testing.models import code_reply

from ..cli.llm_stub import LLMStub
from .figures import Figures

PROVIDER_RUNS = os.environ.get("AGENTLOOP_PROVIDER_RUNS")
RUNS = int(PROVIDER_RUNS) if PROVIDER_RUNS else 24
LIMIT, WINDOW = (40, 1.0) if PROVIDER_RUNS else (10, 0.5)
"""At most LIMIT requests in any WINDOW seconds: 40 a second under nox, 20 in the default run."""
TOLERANCE = 0.1 if PROVIDER_RUNS else 0.2
"""The issue's bound (10%) holds at 500 runs. The default run's 24 calls span ~1.2 s, where one
refused call (a slot of 23) and the first and last requests' jitter move the figure by ~6%
(measured: 92-98% of the limit on 2 shared cores), so it is held to 20% there."""
MAX_REFUSED = max(3, RUNS // 10)
"""Requests the stub may refuse: pacing keeps them rare (measured: 0-2 of 24, 10-25 of 500);
without it, every request past the first window's would be refused at least once."""
MODEL_ID = "openai/gpt-4o-mini"


@pytest.mark.timeout(300 if PROVIDER_RUNS else 60)
async def test_runs_at_a_provider_rate_limit_all_answer_at_its_throughput(
    figures: Figures,
) -> None:
    litellm.suppress_debug_info = True
    limit_per_second = LIMIT / WINDOW
    with LLMStub(
        respond=lambda request: code_reply("final_answer('done')"), rate_limit=(LIMIT, WINDOW)
    ) as stub:
        model = LiteLLMModel(model_id=MODEL_ID, api_key="sk-test", api_base=stub.base_url)
        limits = ModelLimits(requests_per_minute=limit_per_second * 60)
        async with create_async_agent(model=model, model_limits=limits, max_steps=2) as agent:
            # litellm's first call is slow, and so is its first error (it imports
            # fastapi.exceptions then: ~0.4 s of CPU on the loop); both are paid before
            stub.fail_next(429, retry_after_ms=1)
            assert await agent.arun("warm up") == "done"  # paced like the rest: no wait
            warm = len(stub.accepted_at)

            async def timed(i: int) -> float:
                started = time.monotonic()
                assert await agent.arun(f"task {i}") == "done"
                return time.monotonic() - started

            started = time.monotonic()
            durations = await asyncio.gather(*(timed(i) for i in range(RUNS)))
            makespan = time.monotonic() - started
        accepted = stub.accepted_at[warm:]
        refused = stub.rate_limited

    throughput = (len(accepted) - 1) / (accepted[-1] - accepted[0])
    figures.measured(
        "provider_limits",
        runs=RUNS,
        limit_per_second=limit_per_second,
        throughput_per_second=round(throughput, 1),
        ratio_to_limit=round(throughput / limit_per_second, 3),
        provider_429s=refused,
        makespan_s=round(makespan, 2),
        median_run_s=round(statistics.median(durations), 2),
        longest_run_s=round(max(durations), 2),
    )
    assert len(accepted) == RUNS  # one call per run, each admitted once: none failed for good
    assert refused <= MAX_REFUSED, refused
    low, high = (1 - TOLERANCE) * limit_per_second, (1 + TOLERANCE) * limit_per_second
    assert low <= throughput <= high, throughput
    # first come, first served: the longest wait is the load's own length, not a starved run's
    assert max(durations) <= RUNS / limit_per_second * 1.3 + 2.0
