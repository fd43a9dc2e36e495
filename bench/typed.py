"""What a typed answer costs: a run with `output_type=` against the same run untyped.

The scripted model answers at once with an invoice of 20 line items (valid, so no correction
step): the untyped run returns the dict, the typed one validates it into the pydantic model
(the schema rendered into the task, the answer walked as plain data, validated and dumped to
its JSON form). Runs go one after the other, so the difference per run is the typed path's own
cost. The validation alone (no run around it) is timed too, and so is describing the type (its
adapter, JSON schema and classes), which an agent does once per output type.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from time import perf_counter

from pydantic import BaseModel

from agentloop import create_async_agent
from agentloop.agent._answer_type import AnswerType
from agentloop.testing import ScriptedModel

from ._measure import Result, Series, paired

__all__ = ["typed_answer_cost"]

RUNS = 100
"""Runs per sample, each side."""
VALIDATIONS = 2000
"""Validations per sample of the validation alone."""
OVERHEAD_TARGET_MS = 1.0


class Line(BaseModel):
    sku: str
    quantity: int
    price: float


class Invoice(BaseModel):
    number: str
    customer: str
    lines: list[Line]
    total: float


LINES = [{"sku": f"SKU-{i}", "quantity": i + 1, "price": 9.5} for i in range(20)]
ANSWER = {"number": "INV-1", "customer": "ACME", "lines": LINES, "total": 1995.0}
CODE = f"final_answer({ANSWER!r})"


async def _measure(repeats: int) -> tuple[list[float], list[float]]:
    agent = create_async_agent(model=ScriptedModel([CODE]))

    async def untyped() -> float:
        start = perf_counter()
        for _ in range(RUNS):
            await agent.arun("Bill ACME.")
        return (perf_counter() - start) / RUNS

    async def typed() -> float:
        start = perf_counter()
        for _ in range(RUNS):
            await agent.arun("Bill ACME.", output_type=Invoice)
        return (perf_counter() - start) / RUNS

    async with agent:
        await typed()  # pydantic imported and the model's schema built once, as in a service
        return await paired(repeats, untyped, typed)


def _per_call(repeats: int, call: Callable[[], object], calls: int) -> list[float]:
    samples = []
    for _ in range(repeats):
        start = perf_counter()
        for _ in range(calls):
            call()
        samples.append((perf_counter() - start) / calls)
    return samples


def typed_answer_cost(repeats: int) -> Result:
    untyped, typed = asyncio.run(_measure(repeats))
    answer_type: AnswerType[Invoice] = AnswerType(Invoice)
    alone = _per_call(repeats, lambda: answer_type.validate(ANSWER), VALIDATIONS)
    described = _per_call(repeats, lambda: AnswerType(Invoice), VALIDATIONS // 10)
    plain = Series("untyped run", "ms/run", tuple(t * 1e3 for t in untyped))
    checked = Series("typed run (output_type=Invoice)", "ms/run", tuple(t * 1e3 for t in typed))
    overhead = Series(
        "typed-answer overhead",
        "ms/run",
        tuple((t - u) * 1e3 for t, u in zip(typed, untyped, strict=True)),
    )
    validation = Series(
        "walk + validate + dump of one answer, alone", "us/answer", tuple(t * 1e6 for t in alone)
    )
    describing = Series(
        "describing the type (once per agent)", "us/type", tuple(t * 1e6 for t in described)
    )
    share = overhead.median / plain.median * 100
    return Result(
        name="typed",
        title=f"13. typed answers: a one-step run answering an invoice of {len(LINES)} lines",
        headline=f"{overhead.median:.2f} ms per typed run ({share:.0f}% of the untyped run)",
        target=f"<= {OVERHEAD_TARGET_MS:g} ms per run",
        met=overhead.median <= OVERHEAD_TARGET_MS,
        series=(plain, checked, overhead, validation, describing),
        figures={
            "overhead_ms": overhead.median,
            "overhead_percent": share,
            "validation_us": validation.median,
            "describe_type_us": describing.median,
        },
        notes=("paired with the same run untyped; the scripted model answers on its first step",),
    )
