"""The model, as a service runs it: its words as it writes them, a typed answer, a fallback.

* `agent.astream(...)` carries `model_delta` events while the model writes each step, so a
  chat UI shows a long step being written instead of nothing until it ends;
* `output_type=Quote` makes the run return a validated `Quote`: the model's first answer misses
  a field, goes back to it with what is wrong, and its second answer passes;
* `model=[primary, fallback]`: the primary's provider is rate limited (an HTTP 429), so each
  call goes to the fallback, and the stream says so (`model_fallback`).

A real application passes smolagents models, for example
`model=[LiteLLMModel("openai/gpt-4o"), LiteLLMModel("anthropic/claude-sonnet-4-5")]`, and can
add `model_limits=ModelLimits(requests_per_minute=...)` (docs/models.md). Here scripted models
play the LLMs, so the example runs offline and does the same every time.

Run it with `python examples/model_features.py`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel

from agentloop import RunEventKind, create_async_agent
from agentloop.testing import FunctionModel, ScriptedModel


class Quote(BaseModel):
    """What the run must answer."""

    product: str
    units: int
    unit_price: float


async def price_of(product: str) -> float:
    """The unit price of a product.

    Args:
        product: the product's name.
    """
    await asyncio.sleep(0.05)  # a catalogue lookup
    return {"widget": 2.5, "gadget": 7.0}.get(product, 1.0)


class RateLimited(Exception):
    """What a provider client raises for HTTP 429."""

    status_code = 429


def rate_limited(messages: list[Any]) -> str:
    raise RateLimited("429 Too Many Requests: slow down")


STEPS = [
    'price = price_of("widget")\nprint(price)',
    'final_answer({"product": "widget", "units": 40})',  # misses unit_price: sent back
    'final_answer({"product": "widget", "units": 40, "unit_price": price})',
]


async def main() -> None:
    primary = FunctionModel(rate_limited, model_id="provider-a/large")
    fallback = ScriptedModel(STEPS, model_id="provider-b/large", chunk_chars=12, chunk_delay=0.01)
    async with create_async_agent(tools=[price_of], model=[primary, fallback]) as agent:
        stream = agent.astream("Quote 40 widgets.", output_type=Quote)
        async with stream:
            async for event in stream:
                if event.kind is RunEventKind.MODEL_DELTA and event.delta is not None:
                    print(event.delta.text, end="", flush=True)
                elif event.kind is RunEventKind.MODEL_FALLBACK:
                    moved = event.to_dict()
                    print(
                        f"\n[step {moved['step']}: {moved['model']} failed, using "
                        f"{moved['next_model']}]"
                    )
                elif event.kind is RunEventKind.STEP and event.step is not None:
                    print(f"\n[step {event.step.number} done]")
            quote = await stream.result()
    print(f"\nquote: {quote!r} (a {type(quote).__name__})")
    print(f"total: {quote.units * quote.unit_price:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
