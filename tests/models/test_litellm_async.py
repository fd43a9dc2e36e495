"""`litellm_agenerate`: a smolagents `LiteLLMModel` reply awaited on the loop, holding no thread.

Every call goes through the real client stack (litellm → openai SDK → HTTP) against the local
OpenAI-compatible stub (`tests/cli/llm_stub.py`). The openai client's own retries are off
(`max_retries=0`) so that the retries seen are smolagents' (`model.retryer`), which is what
`litellm_agenerate` reproduces. Waits synchronise on the stub's hooks and on log records,
delivered to the loop as asyncio events, never on elapsed time.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import litellm  # here, not in a test: a cold import takes seconds, more than a test's timeout
import pytest
from smolagents import LiteLLMModel
from smolagents.models import ChatMessage, MessageRole

from agentloop.agent._litellm_async import (
    AsyncPathUnavailable,
    async_path_unavailable,
    litellm_agenerate,
)
from agentloop.testing import ScriptedModel

from ..cli.llm_stub import LLMStub

MODEL_ID = "openai/gpt-4o-mini"
STUB_THREADS = "(process_request_thread)"
"""The stub's handler threads end their names so: one per connection the client opens."""


def litellm_model(stub: LLMStub, *, model_id: str = MODEL_ID, **options: Any) -> LiteLLMModel:
    litellm.suppress_debug_info = True
    return LiteLLMModel(
        model_id=model_id, api_key="sk-test", api_base=stub.base_url, max_retries=0, **options
    )


def ask(text: str) -> list[ChatMessage]:
    return [
        ChatMessage(role=MessageRole.SYSTEM, content=[{"type": "text", "text": "Be brief."}]),
        ChatMessage(role=MessageRole.USER, content=[{"type": "text", "text": text}]),
    ]


class Heard:
    """What the stub's handler threads report, delivered on the loop as asyncio events."""

    def __init__(self, stub: LLMStub, *, held: int = 1) -> None:
        loop = asyncio.get_running_loop()
        self.all_held = asyncio.Event()
        """Set once `held` requests are waiting in the stub at the same time."""
        self.disconnected = asyncio.Event()
        """Set when a client closed a held request's connection."""

        def on_hold(count: int) -> None:
            if count >= held:
                loop.call_soon_threadsafe(self.all_held.set)

        stub.on_hold = on_hold
        stub.on_disconnect = lambda: loop.call_soon_threadsafe(self.disconnected.set)


class _OnRecord(logging.Handler):
    def __init__(self, wanted: Callable[[logging.LogRecord], bool], then: Callable[[], Any]):
        super().__init__(logging.DEBUG)
        self._wanted, self._then = wanted, then

    def emit(self, record: logging.LogRecord) -> None:
        if self._wanted(record):
            self._then()


@pytest.fixture
def stub() -> Iterator[LLMStub]:
    with LLMStub() as server:
        yield server


def essentials(message: ChatMessage) -> tuple[Any, ...]:
    return message.role, message.content, message.tool_calls, message.token_usage


# -- the same reply as generate ------------------------------------------------------------------


async def test_a_reply_is_the_chat_message_generate_returns(stub: LLMStub) -> None:
    stub.add_replies("Forty-two, as computed.", "Forty-two, as computed.")
    model = litellm_model(stub)
    messages = ask("What is six times seven?")
    options: dict[str, Any] = {"stop_sequences": ["<end_code>"], "temperature": 0.25}

    expected = await asyncio.to_thread(model.generate, messages, **options)
    reply = await litellm_agenerate(model, messages, **options)

    assert essentials(reply) == essentials(expected)
    assert reply.role == "assistant" and reply.content == "Forty-two, as computed."
    assert reply.token_usage is not None and reply.token_usage.output_tokens == 3
    assert type(reply.raw) is type(expected.raw)
    sync_request, async_request = stub.requests
    assert async_request.body == sync_request.body  # the same completion kwargs reached the wire
    assert async_request.body["stop"] == ["<end_code>"]
    assert async_request.body["temperature"] == 0.25


async def test_stop_sequences_are_cut_when_the_model_takes_no_stop_parameter(
    stub: LLMStub,
) -> None:
    model = litellm_model(stub, model_id="openai/gpt-5-mini")
    assert not model.supports_stop_parameter
    text = "print(42)\n<end_code>\nand the model kept talking"
    stub.add_replies(text, text)

    expected = await asyncio.to_thread(model.generate, ask("q"), stop_sequences=["<end_code>"])
    reply = await litellm_agenerate(model, ask("q"), stop_sequences=["<end_code>"])

    assert reply.content == expected.content == "print(42)\n"
    assert [("stop" in request.body) for request in stub.requests] == [False, False]


# -- on the loop, holding no thread --------------------------------------------------------------


async def test_the_call_runs_in_the_loop_thread(
    stub: LLMStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = litellm_model(stub)
    stub.add_replies("done")
    threads: list[tuple[str, int]] = []
    prepare, acompletion = model._prepare_completion_kwargs, litellm.acompletion

    def recording_prepare(**kwargs: Any) -> Any:
        threads.append(("prepare", threading.get_ident()))
        return prepare(**kwargs)

    async def recording_acompletion(**kwargs: Any) -> Any:
        threads.append(("acompletion", threading.get_ident()))
        return await acompletion(**kwargs)

    monkeypatch.setattr(model, "_prepare_completion_kwargs", recording_prepare)
    monkeypatch.setattr(litellm, "acompletion", recording_acompletion)

    reply = await litellm_agenerate(model, ask("q"))

    assert reply.content == "done"
    loop_thread = threading.get_ident()
    assert threads == [("prepare", loop_thread), ("acompletion", loop_thread)]


async def test_fifty_calls_waiting_for_their_replies_add_no_thread(stub: LLMStub) -> None:
    calls = 50
    model = litellm_model(stub)
    stub.add_replies("warm", *(f"reply {i}" for i in range(calls)))
    # litellm's acompletion runs its synchronous set-up in the loop's default executor for a
    # moment. With one thread there, 50 calls reach the stub together only if none of them
    # keeps a thread while it waits for its reply.
    loop = asyncio.get_running_loop()
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="default-executor")
    loop.set_default_executor(executor)
    await litellm_agenerate(model, ask("warm up"))  # litellm starts its process-wide workers
    before = {thread.ident for thread in threading.enumerate()}
    heard = Heard(stub, held=calls)
    stub.hold()
    try:
        waiting = [
            asyncio.create_task(litellm_agenerate(model, ask(f"question {i}")))
            for i in range(calls)
        ]
        async with asyncio.timeout(20):
            await heard.all_held.wait()
        added = [
            thread.name
            for thread in threading.enumerate()
            if thread.ident not in before and not thread.name.endswith(STUB_THREADS)
        ]
    finally:
        stub.release()
    replies = await asyncio.gather(*waiting)

    assert added == []
    assert sorted(str(reply.content) for reply in replies) == sorted(
        f"reply {i}" for i in range(calls)
    )


# -- rate limit and retries ----------------------------------------------------------------------


async def test_a_429_is_retried_with_smolagents_settings_and_answers(
    stub: LLMStub, caplog: pytest.LogCaptureFixture
) -> None:
    model = litellm_model(stub)
    model.retryer.wait_seconds = 0.001  # smolagents' own first wait is 2-4 minutes
    stub.fail_first(1, 429)
    stub.add_replies("after the retry")

    with caplog.at_level(logging.INFO, logger="smolagents"):
        reply = await litellm_agenerate(model, ask("q"))

    assert reply.content == "after the retry"
    assert [request.status for request in stub.requests] == [429, 200]
    lines = [record.getMessage() for record in caplog.records if record.name == "smolagents.models"]
    assert lines[0].startswith("Finished call to 'acompletion' after ")
    assert lines[0].endswith("this was attempt n°1/3.")
    assert lines[1].startswith("Retrying acompletion in ") and "RateLimitError" in lines[1]
    assert lines[2].endswith("this was attempt n°2/3.")


@pytest.mark.parametrize(
    ("retry", "status", "error"),
    [(False, 429, "RateLimitError"), (True, 500, "InternalServerError")],
    ids=["429-with-retry-off", "500-is-not-a-rate-limit"],
)
async def test_an_error_that_is_not_retried_is_raised(
    stub: LLMStub, retry: bool, status: int, error: str
) -> None:
    model = litellm_model(stub, retry=retry)
    model.retryer.wait_seconds = 0.001
    stub.fail_first(1, status)
    stub.add_replies("never served")

    with pytest.raises(Exception, match=error) as raised:
        await litellm_agenerate(model, ask("q"))

    assert type(raised.value).__name__ == error
    assert [request.status for request in stub.requests] == [status]


async def test_the_retry_wait_leaves_the_loop_free_and_is_cancellable(
    stub: LLMStub, caplog: pytest.LogCaptureFixture
) -> None:
    model = litellm_model(stub)
    model.retryer.wait_seconds = 3600.0  # a wait that blocked the loop would end by the timeout
    stub.fail_first(1, 429)
    loop = asyncio.get_running_loop()
    retry_scheduled = asyncio.Event()
    logger, _ = model.retryer.before_sleep_logger
    handler = _OnRecord(
        lambda record: record.getMessage().startswith("Retrying"),
        lambda: loop.call_soon_threadsafe(retry_scheduled.set),
    )

    async def meanwhile() -> str:
        await retry_scheduled.wait()
        return "another coroutine ran while the call waited to retry"

    logger.addHandler(handler)
    try:
        with caplog.at_level(logging.INFO, logger="smolagents"):
            call = asyncio.create_task(litellm_agenerate(model, ask("q")))
            async with asyncio.timeout(10):
                assert await meanwhile() == "another coroutine ran while the call waited to retry"
            assert not call.done()
            call.cancel()
            done, _ = await asyncio.wait({call}, timeout=5)
    finally:
        logger.removeHandler(handler)

    assert call in done and call.cancelled()
    assert [request.status for request in stub.requests] == [429]


async def test_the_rate_limit_waits_on_the_loop_one_slot_per_call(stub: LLMStub) -> None:
    model = litellm_model(stub, requests_per_minute=1)
    limiter = model.rate_limiter
    stub.add_replies("first", "never served")

    first = asyncio.create_task(litellm_agenerate(model, ask("one")))
    second = asyncio.create_task(litellm_agenerate(model, ask("two")))
    assert (await first).content == "first"  # the loop served it while `second` waited

    assert not second.done()
    assert len(stub.requests) == 1
    assert limiter._last_call - time.time() > 50  # `second` holds the slot a minute later
    second.cancel()
    done, _ = await asyncio.wait({second}, timeout=5)
    assert second in done and second.cancelled()
    assert limiter._last_call <= time.time()  # the cancelled call gave its slot back
    assert len(stub.requests) == 1


# -- cancellation --------------------------------------------------------------------------------


async def test_cancelling_a_call_the_stub_holds_closes_its_connection(stub: LLMStub) -> None:
    model = litellm_model(stub)
    stub.add_replies("never sent")
    heard = Heard(stub)
    stub.hold()
    try:
        call = asyncio.create_task(litellm_agenerate(model, ask("q")))
        async with asyncio.timeout(10):
            await heard.all_held.wait()
        call.cancel()
        done, _ = await asyncio.wait({call}, timeout=5)
        assert call in done and call.cancelled()
        async with asyncio.timeout(10):
            await heard.disconnected.wait()
    finally:
        stub.release()


# -- what it cannot await ------------------------------------------------------------------------


class _SyncOnlyClient:
    """A user's client with only the blocking call."""

    def completion(self, **kwargs: Any) -> Any:
        raise AssertionError("the refused model was called")


class _AsyncClient:
    """A user's client with an `async def acompletion` (as a litellm Router has)."""

    def __init__(self) -> None:
        self.models: list[str] = []

    async def acompletion(self, **kwargs: Any) -> Any:
        self.models.append(kwargs["model"])
        return await litellm.acompletion(**kwargs)


class _OwnGenerate(LiteLLMModel):  # type: ignore[misc]
    def generate(self, *args: Any, **kwargs: Any) -> ChatMessage:
        raise AssertionError("the refused model was called")


async def test_a_client_with_its_own_acompletion_is_awaited(stub: LLMStub) -> None:
    client = _AsyncClient()
    model = litellm_model(stub, client=client)
    stub.add_replies("through the client")

    assert async_path_unavailable(model) is None
    reply = await litellm_agenerate(model, ask("q"))

    assert reply.content == "through the client"
    assert client.models == [MODEL_ID]


def _own_limiter(model: LiteLLMModel) -> LiteLLMModel:
    model.rate_limiter = object()
    return model


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        (lambda stub: ScriptedModel(["x"]), "`ScriptedModel` is not a smolagents LiteLLMModel"),
        (
            lambda stub: _OwnGenerate(model_id=MODEL_ID, api_base=stub.base_url),
            "`_OwnGenerate` overrides `generate`",
        ),
        (
            lambda stub: litellm_model(stub, client=_SyncOnlyClient()),
            r"client \(`_SyncOnlyClient`\) has no `async def acompletion`",
        ),
        (
            lambda stub: _own_limiter(litellm_model(stub)),
            r"rate limiter \(`object`\) is not smolagents' own",
        ),
    ],
    ids=["not-litellm", "own-generate", "sync-client", "own-limiter"],
)
async def test_a_model_it_cannot_await_is_refused_before_any_request(
    stub: LLMStub, build: Callable[[LLMStub], Any], reason: str
) -> None:
    model = build(stub)

    assert async_path_unavailable(model) is not None
    with pytest.raises(AsyncPathUnavailable, match=reason):
        await litellm_agenerate(model, ask("q"))
    assert stub.requests == []
