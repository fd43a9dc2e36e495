"""Typed answers and images through LiteLLM, against the local stub.

A `LiteLLMModel` on the stub answers a typed run with an invoice missing a field, then with a
whole one: the second request carries what was wrong (as the observation smolagents shows
the model), and the run returns the `Invoice`. Images go to a vision model as image parts of
the request; a model LiteLLM knows without vision is refused before any request.
"""

from __future__ import annotations

import io

import litellm  # noqa: F401  (here, not in a test: a cold import takes seconds)
import pytest
from PIL import Image
from pydantic import BaseModel
from smolagents import LiteLLMModel

from agentloop import AnswerValidationError, InvalidArgumentsError, create_async_agent

from ..cli.llm_stub import LLMStub


class Invoice(BaseModel):
    number: str
    total: float


def code(text: str) -> str:
    return f"Thought: answering.\n<code>\n{text}\n</code>"


def model_on(stub: LLMStub, model_id: str = "openai/gpt-4o-mini") -> LiteLLMModel:
    return LiteLLMModel(model_id=model_id, api_key="sk-test", api_base=stub.base_url, retry=False)


async def test_a_bad_answer_goes_back_to_the_model_and_the_run_returns_the_instance() -> None:
    replies = [
        code('final_answer({"number": "INV-7"})'),
        code('final_answer({"number": "INV-7", "total": 99.5})'),
    ]
    with LLMStub(replies) as stub:
        async with create_async_agent(model=model_on(stub)) as agent:
            invoice = await agent.arun("Read the invoice.", output_type=Invoice)
    assert invoice == Invoice(number="INV-7", total=99.5)
    first, second = stub.requests
    assert "total" in first.text("user") or "total" in first.text("system")  # the schema
    observation = second.text("user") + second.text("tool-response")
    assert "total" in observation and "required" in observation.lower()


async def test_retries_exhausted_fail_with_the_last_value() -> None:
    with LLMStub([code('final_answer({"number": 1})')] * 2) as stub:
        async with create_async_agent(model=model_on(stub)) as agent:
            with pytest.raises(AnswerValidationError) as caught:
                await agent.arun("Read it.", output_type=Invoice, output_retries=1)
    assert caught.value.last_value == {"number": 1}


async def test_an_image_reaches_a_vision_model_as_an_image_part() -> None:
    picture = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(picture, format="PNG")
    with LLMStub([code('final_answer("red")')]) as stub:
        async with create_async_agent(model=model_on(stub)) as agent:
            assert await agent.arun("What colour?", images=[picture.getvalue()]) == "red"
    parts = [
        part
        for message in stub.requests[0].messages
        if isinstance(message.get("content"), list)
        for part in message["content"]
    ]
    [image] = [part for part in parts if part.get("type") == "image_url"]
    assert image["image_url"]["url"].startswith("data:image/png;base64,")


async def test_a_model_without_vision_is_refused_before_any_request() -> None:
    with LLMStub([code('final_answer("x")')]) as stub:
        async with create_async_agent(model=model_on(stub, "openai/gpt-3.5-turbo")) as agent:
            with pytest.raises(InvalidArgumentsError, match="images"):
                await agent.arun("What colour?", images=[Image.new("RGB", (2, 2))])
    assert stub.requests == []
