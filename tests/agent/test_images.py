"""`arun(task, images=[...])`: pictures reach the controller's model as smolagents hands them
over (PIL images in the task's message), whatever form the app had them in; what cannot be
sent (a URL, a broken file, a model that takes no images) is refused before any model call."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from smolagents import LiteLLMModel

from agentloop import InvalidArgumentsError, create_async_agent
from agentloop.agent._images import turn_images
from agentloop.testing import FunctionModel, ScriptedModel, images

pytestmark = pytest.mark.timeout(20)


def picture(width: int, height: int, color: str = "red") -> Image.Image:
    return Image.new("RGB", (width, height), color)


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


async def test_each_form_of_image_reaches_the_model_as_a_pil_image(tmp_path: Path) -> None:
    path = tmp_path / "b.png"
    path.write_bytes(png(picture(2, 2)))
    data_url = "data:image/png;base64," + base64.b64encode(png(picture(3, 3))).decode()
    model = ScriptedModel(["final_answer('seen')"])
    agent = create_async_agent(model=model)
    answer = await agent.arun(
        "Describe.",
        images=[picture(1, 1), png(picture(4, 4)), path, str(path), data_url],
    )
    assert answer == "seen"
    assert [image.size for image in model.last_images] == [(1, 1), (4, 4), (2, 2), (2, 2), (3, 3)]
    assert all(isinstance(image, Image.Image) for image in model.last_images)


async def test_a_session_turn_takes_images_and_later_turns_still_see_them() -> None:
    seen: list[int] = []

    def reply(messages: list[Any]) -> str:
        seen.append(len(images(messages)))
        return "final_answer('ok')"

    agent = create_async_agent(model=FunctionModel(reply))
    async with agent.session() as session:
        await session.arun("Look.", images=[picture(1, 1)])
        await session.arun("And now?")
    assert seen[0] == 1
    assert seen[1] >= 1  # the conversation holds the first turn's image


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("https://example.com/cat.png", "agentloop does not fetch images"),
        ("pic.png", "pass `images=\\[image\\]`"),
        ([b"not an image"], "image 1: its bytes could not be read as an image"),
        ([Path("/nonexistent/x.png")], "image 1: the file .* could not be read"),
        (["data:image/png,abc"], "not base64"),
        (["data:image/png;base64,!!!"], "not valid base64"),
        ([3.5], "image 1 is a float"),
        ([picture(1, 1)] * 65, "at most 64"),
    ],
    ids=["url", "bare-str", "bad-bytes", "missing-file", "data-plain", "data-bad", "float", "many"],
)
async def test_what_cannot_be_sent_is_refused_before_any_model_call(
    given: Any, message: str
) -> None:
    if given == "https://example.com/cat.png":
        given = [given]
    model = ScriptedModel(["final_answer(1)"])
    agent = create_async_agent(model=model)
    with pytest.raises(InvalidArgumentsError, match=message):
        await agent.arun("Describe.", images=given)
    assert model.calls == 0


async def test_a_model_litellm_knows_without_vision_is_refused_before_any_call() -> None:
    agent = create_async_agent(model=LiteLLMModel(model_id="gpt-3.5-turbo", api_key="unused"))
    with pytest.raises(InvalidArgumentsError, match=r"`gpt-3\.5-turbo` does not take images"):
        await agent.arun("Describe.", images=[picture(1, 1)])


async def test_a_model_whose_messages_are_flattened_to_text_is_refused() -> None:
    model = LiteLLMModel(model_id="ollama/llava", api_base="http://127.0.0.1:1")
    agent = create_async_agent(model=model)
    with pytest.raises(InvalidArgumentsError, match="flattened to text"):
        await agent.arun("Describe.", images=[picture(1, 1)])


async def test_vision_models_and_models_litellm_does_not_know_are_accepted() -> None:
    for model_id in ("gpt-4o", "openai/a-model-of-our-own"):
        converted = await turn_images([picture(1, 1)], LiteLLMModel(model_id=model_id))
        assert converted is not None
        assert len(converted.digests) == 1


async def test_digests_name_the_pixels() -> None:
    red = await turn_images([picture(2, 2, "red")], None)
    same = await turn_images([png(picture(2, 2, "red"))], None)
    blue = await turn_images([picture(2, 2, "blue")], None)
    assert red is not None and same is not None and blue is not None
    assert red.digests == same.digests
    assert red.digests != blue.digests
