"""What a provider budget (`ModelLimits`) costs per model call, against the same call without.

The model answers at once (an async function returning a fixed reply), so what is timed is all
bookkeeping. The floor is the call through a plain pass-through `WrapperModel`; the subject is
the call through a `LimitedModel` with every dimension on (a `max_concurrent` slot, a start
reserved in the requests and tokens schedule, the token estimate before and its correction
after) but wide enough never to wait, so the figure is the limiter's own cost, not a wait.
"""

from __future__ import annotations

import asyncio
from time import perf_counter
from typing import Any

from agentloop import ModelLimits
from agentloop._util import ModelCall, WrapperModel
from agentloop.core._limited_model import LimitedModel

from ._measure import Result, Series, paired

__all__ = ["limits_overhead"]

CALLS = 20_000
TARGET_US = 50.0
MESSAGES = [
    {"role": "system", "content": [{"type": "text", "text": "You are a helpful agent. " * 40}]},
    {"role": "user", "content": [{"type": "text", "text": "What is six times seven?"}]},
]


class _Usage:
    input_tokens = 250
    output_tokens = 20


class _Reply:
    content = "42"
    token_usage = _Usage()


class _Model:
    model_id = "bench/instant"


class _PassThrough(WrapperModel):
    __slots__ = ()


REPLY = _Reply()


async def _instant(messages: Any, kwargs: dict[str, Any]) -> Any:
    return REPLY


async def _calls(model: WrapperModel) -> float:
    """Seconds per call of `model`, `CALLS` calls one after the other on the loop."""
    call = ModelCall(_instant)
    start = perf_counter()
    for _ in range(CALLS):
        await model.agenerate_through(call, MESSAGES, {})
    return (perf_counter() - start) / CALLS


async def _measure(repeats: int) -> tuple[list[float], list[float]]:
    limits = ModelLimits(
        max_concurrent=64, requests_per_minute=1e9, tokens_per_minute=10**12, max_attempts=3
    )
    plain = _PassThrough(_Model())
    limited = LimitedModel(_Model(), limits)
    return await paired(repeats, lambda: _calls(plain), lambda: _calls(limited))


def limits_overhead(repeats: int) -> Result:
    plain, limited = asyncio.run(_measure(repeats))
    us = 1e6
    extra = Series(
        "ModelLimits' cost per call",
        "us/call",
        tuple((s - p) * us for s, p in zip(limited, plain, strict=True)),
    )
    return Result(
        name="model_limits",
        title=f"13. a provider budget (ModelLimits) around {CALLS} instant model calls",
        headline=f"{extra.median:.1f} us per call (min {extra.min:.1f} us)",
        target=f"<= {TARGET_US:g} us per call",
        met=extra.median <= TARGET_US,
        series=(
            Series("call, no limits", "us/call", tuple(v * us for v in plain)),
            Series(
                "call, ModelLimits (all on, never waiting)",
                "us/call",
                tuple(v * us for v in limited),
            ),
            extra,
        ),
        figures={"us_per_call_median": extra.median, "us_per_call_min": extra.min},
        notes=(
            "slot + paced start + token estimate and correction; a wait for the provider's "
            "budget (the point of the limits) is not overhead and is not measured here",
        ),
    )
