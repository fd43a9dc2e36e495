"""`images=`: pictures that go to the controller with its task, as smolagents takes them.

smolagents' `CodeAgent.run(task, images=[...])` takes PIL images: they join the task's message
and every step's observations, and each model turns them into its provider's image parts
(`LiteLLMModel` sends them as base64 `data:` URLs). A turn accepts what applications have at
hand and converts it first, in a worker thread (decoding a picture is CPU work the loop must
not do): a PIL image as it is; `bytes` (any format PIL reads); a path; a `data:` URL. An
`http(s)://` URL is refused: agentloop makes no network request the application did not make
itself (no hidden latency, no fetching of addresses a service's users chose); download it with
your own client, timeouts and size limits, and pass the bytes.

A model that cannot take images is refused before any call: one whose messages smolagents
flattens to text (`flatten_messages_as_text`, on by default for LiteLLM ids that start with
`ollama`, `groq` or `cerebras`),
and a `LiteLLMModel` whose id LiteLLM's model list knows without `supports_vision` (read
offline). Any other model is trusted to take them. Where LiteLLM's list is wrong about a model,
`litellm.register_model({model_id: {"supports_vision": True}})` corrects it.

A journal stores each image's digest, never its bytes: a resumed run with other images is
refused, as one with another task is.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anyio.to_thread

from .._text import describe, shown, truncate
from ..errors import InvalidArgumentsError

__all__ = ["MAX_IMAGES", "TurnImages", "turn_images"]

MAX_IMAGES = 64
"""Most images one turn takes (each is sent again with every step's observations)."""


@dataclass(frozen=True, slots=True)
class TurnImages:
    """A turn's images, converted, and their digests (what a journal compares)."""

    images: tuple[Any, ...]
    """PIL images, in the order given."""
    digests: tuple[str, ...]

    @property
    def identity(self) -> str:
        return ",".join(self.digests)


async def turn_images(images: Sequence[Any] | None, model: Any) -> TurnImages | None:
    """`images=` checked and converted (in a worker thread), or an `InvalidArgumentsError`
    that says what was wrong before anything is sent to `model`."""
    if images is None:
        return None
    if isinstance(images, (str, bytes, bytearray, os.PathLike)) or not isinstance(images, Sequence):
        raise InvalidArgumentsError(
            f"`images` must be a list (of PIL images, bytes, paths or data: URLs), received "
            f"a {type(images).__name__}; for one image pass `images=[image]`."
        )
    if len(images) > MAX_IMAGES:
        raise InvalidArgumentsError(
            f"`images` holds {len(images)} images; a turn takes at most {MAX_IMAGES}."
        )
    if not images:
        return None
    refusal = _model_refusal(model, litellm_loaded=False)
    if refusal is not None:
        raise InvalidArgumentsError(refusal)
    items = list(images)
    return await anyio.to_thread.run_sync(_converted, items, model)


def _converted(items: list[Any], model: Any) -> TurnImages:
    """In a worker thread: the model's check that needs LiteLLM, then each image decoded."""
    refusal = _model_refusal(model, litellm_loaded=True)
    if refusal is not None:
        raise InvalidArgumentsError(refusal)
    images = tuple(_image(item, number) for number, item in enumerate(items, 1))
    return TurnImages(images, tuple(_digest(image) for image in images))


def _image(item: Any, number: int) -> Any:
    from PIL import Image

    if isinstance(item, Image.Image):
        return item
    if isinstance(item, (bytes, bytearray, memoryview)):
        return _decoded(io.BytesIO(bytes(item)), number, "its bytes")
    if isinstance(item, str) and item[:5].lower() == "data:":
        return _decoded(io.BytesIO(_data_url_bytes(item, number)), number, "its data: URL")
    if isinstance(item, str) and item.split(":", 1)[0].lower() in ("http", "https", "ftp"):
        raise InvalidArgumentsError(
            f"image {number} is a URL ({shown(item, 80)}); agentloop does not fetch images. "
            "Download it with your own HTTP client (its timeouts, size limits and auth) and "
            "pass the bytes."
        )
    if isinstance(item, (str, os.PathLike)):
        return _decoded(item, number, f"the file {shown(os.fspath(item), 120)}")
    raise InvalidArgumentsError(
        f"image {number} is a {truncate(type(item).__name__, 80)}; pass a PIL image, bytes, "
        "a path or a data: URL."
    )


def _decoded(source: Any, number: int, what: str) -> Any:
    from PIL import Image

    try:
        image = Image.open(source)
        image.load()  # decode now: a broken picture fails here, not at the model call
    except Exception as exc:
        raise InvalidArgumentsError(
            f"image {number}: {what} could not be read as an image ({describe(exc)})."
        ) from None
    return image


def _data_url_bytes(url: str, number: int) -> bytes:
    header, _, payload = url.partition(",")
    if not header.lower().endswith(";base64"):
        raise InvalidArgumentsError(
            f"image {number} is a data: URL that is not base64 ({shown(header, 60)}); use "
            "`data:image/png;base64,...`."
        )
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidArgumentsError(
            f"image {number} is a data: URL whose payload is not valid base64."
        ) from None


def _digest(image: Any) -> str:
    """What identifies an image's content: its mode, size and pixels."""
    digest = hashlib.sha256(f"{image.mode}:{image.size}:".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()[:16]


def _model_refusal(model: Any, *, litellm_loaded: bool) -> str | None:
    """Why `model` cannot take images, or `None`. The cheap checks run on the loop; the one
    that reads LiteLLM's model list (importing LiteLLM) runs in the worker thread."""
    candidates = model if isinstance(model, (list, tuple)) else [model]
    for candidate in candidates:
        name = str(getattr(candidate, "model_id", "") or type(candidate).__name__)
        if not litellm_loaded and getattr(candidate, "flatten_messages_as_text", False):
            return (
                f"`images` were given, but model `{truncate(name, 80)}` is called with its "
                "messages flattened to text (smolagents' `flatten_messages_as_text`), which "
                "cannot carry images; if the model takes images, create it with "
                "`flatten_messages_as_text=False`."
            )
        if litellm_loaded and _litellm_says_no_vision(candidate):
            return (
                f"`images` were given, but LiteLLM's model list says model `{truncate(name, 80)}` "
                "does not take images (no `supports_vision`); use a vision model. If the list "
                "is wrong about it: litellm.register_model({model_id: {'supports_vision': True}})."
            )
    return None


def _litellm_says_no_vision(model: Any) -> bool:
    from smolagents.models import LiteLLMModel

    if not isinstance(model, LiteLLMModel) or not isinstance(model.model_id, str):
        return False
    import litellm

    try:
        info = litellm.get_model_info(model.model_id)
    except Exception:  # not in LiteLLM's list: a model it does not know is trusted
        return False
    return not info.get("supports_vision")
