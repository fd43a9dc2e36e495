"""The parts of a provider budget, without a model: the FIFO slots shared by loops and threads,
the schedule of call starts, which errors are transient and how long a provider asked to
wait, the checks of `ModelLimits`' values, and the copy of a model with its own retries off."""

from __future__ import annotations

import asyncio
import copy
import itertools
import pickle
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from types import ModuleType
from typing import Any

import pytest

from agentloop import AgentloopError, InvalidArgumentsError, ModelLimits
from agentloop.core._cancellation import CURRENT_CANCEL, CancelSignal
from agentloop.core._fifo_slots import FifoSlots
from agentloop.core._limited_model import (
    MODEL_RETRY_LISTENER,
    LimitedModel,
    ModelRetry,
    estimated_tokens,
)
from agentloop.core._limits_by_model import model_limits_by_id, own_limits, without_own_retries
from agentloop.core._pace import HEADROOM, Pace
from agentloop.core._provider_errors import retry_after, transient

# -- FIFO slots -------------------------------------------------------------------------------


async def until(condition: Any) -> None:
    """Let the loop run until `condition()` holds: a thread (or another loop) joins the queue
    when the OS schedules it, and the queue has no event to say so; bounded by a timeout."""
    async with asyncio.timeout(5):
        while not condition():  # noqa: ASYNC110 - observable state, checked each loop turn
            await asyncio.sleep(0)


async def test_slots_are_granted_in_arrival_order() -> None:
    slots = FifoSlots(1)
    await slots.acquire()
    order: list[int] = []

    async def take(i: int) -> None:
        await slots.acquire()
        order.append(i)
        slots.release()

    waiters = []
    for i in range(5):
        waiters.append(asyncio.create_task(take(i)))
        await asyncio.sleep(0)  # the task runs to its first wait: it is queued
        assert slots.waiting == i + 1
    slots.release()
    await asyncio.gather(*waiters)

    assert order == [0, 1, 2, 3, 4]
    assert (slots.in_use, slots.waiting) == (0, 0)


async def test_a_cancelled_waiter_takes_nothing_and_frees_nothing() -> None:
    slots = FifoSlots(1)
    await slots.acquire()
    waiter = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    assert slots.waiting == 1
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter

    assert (slots.in_use, slots.waiting) == (1, 0)  # the holder still holds its slot
    slots.release()
    assert slots.in_use == 0


async def test_a_waiter_cancelled_as_its_slot_arrives_passes_it_on() -> None:
    slots = FifoSlots(1)
    await slots.acquire()
    first = asyncio.create_task(slots.acquire())
    second = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    assert slots.waiting == 2
    slots.release()  # handed to `first`, which is cancelled before it runs again
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    await second

    assert (slots.in_use, slots.waiting) == (1, 0)


async def test_a_blocking_thread_and_another_loop_queue_behind_the_same_slots() -> None:
    slots = FifoSlots(1)
    await slots.acquire()
    order: list[str] = []

    def blocking() -> None:
        assert slots.acquire_blocking()
        order.append("thread")
        slots.release()

    def other_loop() -> None:
        async def take() -> None:
            await slots.acquire()
            order.append("other loop")
            slots.release()

        asyncio.run(take())

    thread = threading.Thread(target=blocking)
    thread.start()
    await until(lambda: slots.waiting == 1)
    loop_thread = threading.Thread(target=other_loop)
    loop_thread.start()
    await until(lambda: slots.waiting == 2)
    slots.release()  # from this loop: woken in their thread and on their own loop
    await asyncio.to_thread(thread.join, 5)
    await asyncio.to_thread(loop_thread.join, 5)

    assert order == ["thread", "other loop"]
    assert slots.in_use == 0


def test_an_abandoned_blocking_waiter_leaves_the_queue() -> None:
    slots = FifoSlots(1)
    assert slots.acquire_blocking()
    abandon = threading.Event()
    abandon.set()
    assert not slots.acquire_blocking(abandon)
    assert (slots.in_use, slots.waiting) == (1, 0)


# -- the schedule of starts ---------------------------------------------------------------------


def test_requests_are_spaced_evenly_in_arrival_order() -> None:
    pace = Pace(requests_per_minute=600, tokens_per_minute=None)  # one start per 0.1 s
    starts = [pace.reserve(0).start for _ in range(4)]
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(starts)]
    assert gaps == [round(0.1 * HEADROOM, 6)] * 3


def test_a_call_s_tokens_keep_the_next_start_away_and_usage_corrects_it() -> None:
    pace = Pace(requests_per_minute=None, tokens_per_minute=6000)  # 100 tokens a second
    first = pace.reserve(200)
    second = pace.reserve(50)
    assert round(second.start - first.start, 6) == round(2.0 * HEADROOM, 6)
    pace.correct(estimated=50, used=150)  # the second call used 100 more than estimated
    third = pace.reserve(10)
    assert round(third.start - second.start, 6) == round(1.5 * HEADROOM, 6)


def test_a_correction_never_moves_a_start_before_one_already_granted() -> None:
    pace = Pace(requests_per_minute=None, tokens_per_minute=6000)
    pace.reserve(100)
    second = pace.reserve(100)
    pace.correct(estimated=100, used=0)  # both used nothing: the schedule may move back...
    pace.correct(estimated=100, used=0)
    assert pace.reserve(1).start >= second.start  # ...but not before the second's start


def test_a_cancelled_reservation_gives_its_time_back_if_it_was_the_last() -> None:
    pace = Pace(requests_per_minute=60, tokens_per_minute=None)
    first = pace.reserve(0)
    second = pace.reserve(0)
    pace.give_back(second)
    assert round(pace.reserve(0).start - first.start, 6) == round(1.0 * HEADROOM, 6)


def test_a_hold_off_delays_every_later_start() -> None:
    pace = Pace(requests_per_minute=None, tokens_per_minute=None)
    assert not pace.paced
    pace.hold_off(5.0)
    assert pace.paced
    assert pace.reserve(0).start >= time.monotonic() + 4.0


def test_tokens_are_estimated_from_text_images_and_max_tokens() -> None:
    messages = [
        {"role": "system", "content": "x" * 400},
        {"role": "user", "content": [{"type": "text", "text": "y" * 40}, {"type": "image"}]},
    ]
    assert estimated_tokens(messages, None, 256) == 100 + 10 + 2 * 4 + 1000 + 256
    assert estimated_tokens(messages, 50, 256) == 100 + 10 + 2 * 4 + 1000 + 50


# -- which errors are transient ---------------------------------------------------------------


class Headers(dict[str, str]):
    pass


class FakeResponse:
    def __init__(self, status: int, headers: dict[str, str]) -> None:
        self.status_code = status
        self.headers = Headers(headers)


class ProviderError(Exception):
    def __init__(self, status: int | None, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"status {status}")
        if status is not None:
            self.status_code = status
        self.response = FakeResponse(status or 0, headers or {})


class RateLimitError(Exception):
    """Named like litellm's and openai's: transient by its name alone."""


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ProviderError(429), 429),
        (ProviderError(503), 503),
        (ProviderError(500), 500),
        (ProviderError(408), 408),
        (TimeoutError("read timed out"), None),
        (ConnectionResetError("reset"), None),
        (RateLimitError("slow down"), None),
    ],
)
def test_transient_errors(error: Exception, status: int | None) -> None:
    cause = transient(error)
    assert cause is not None
    assert cause.status == status


@pytest.mark.parametrize(
    "error", [ProviderError(400), ProviderError(401), ProviderError(404), ValueError("bad")]
)
def test_final_errors(error: Exception) -> None:
    assert transient(error) is None


def test_retry_after_prefers_milliseconds_then_seconds_then_a_date() -> None:
    assert retry_after(ProviderError(429, {"retry-after-ms": "250", "retry-after": "9"})) == 0.25
    assert retry_after(ProviderError(429, {"Retry-After": "2"})) == 2.0
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    waited = retry_after(ProviderError(503, {"retry-after": when}))
    assert waited is not None and 25 < waited <= 30
    assert retry_after(ProviderError(429, {"retry-after": "soon"})) is None
    assert retry_after(ProviderError(429)) is None


def test_the_retry_plan_honours_retry_after_and_bounds() -> None:
    limits = ModelLimits(max_attempts=3, max_retry_wait=10, retry_backoff=1.0)
    asked = limits._retry_plan(ProviderError(429, {"retry-after-ms": "1500"}), attempt=1)
    assert asked is not None and (asked.wait, asked.from_provider) == (1.5, True)
    backoff = limits._retry_plan(ProviderError(503), attempt=2)
    assert backoff is not None and 1.0 <= backoff.wait <= 2.0 and not backoff.from_provider
    assert limits._retry_plan(ProviderError(503), attempt=3) is None  # the last attempt
    assert limits._retry_plan(ProviderError(429, {"retry-after": "60"}), attempt=1) is None
    assert limits._retry_plan(ProviderError(400), attempt=1) is None


# -- values -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"max_concurrent": 0}, "max_concurrent"),
        ({"max_concurrent": 2.5}, "max_concurrent"),
        ({"max_concurrent": True}, "max_concurrent"),
        ({"requests_per_minute": 0}, "requests_per_minute"),
        ({"requests_per_minute": -5}, "requests_per_minute"),
        ({"requests_per_minute": "60"}, "requests_per_minute"),
        ({"requests_per_minute": float("inf")}, "requests_per_minute"),
        ({"tokens_per_minute": 1000.0}, "tokens_per_minute"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_retry_wait": -1}, "max_retry_wait"),
        ({"retry_backoff": float("nan")}, "retry_backoff"),
    ],
)
def test_bad_values_are_refused_naming_the_option(options: dict[str, Any], named: str) -> None:
    with pytest.raises(InvalidArgumentsError, match=f"`ModelLimits.{named}` must be"):
        ModelLimits(**options)


def test_model_limits_must_be_one_object_or_a_mapping_by_model_id() -> None:
    model = type("Model", (), {"model_id": "openai/gpt-4o"})()
    limits = ModelLimits(max_concurrent=2)
    assert model_limits_by_id(limits, model) == {"openai/gpt-4o": limits}
    assert own_limits({"openai/gpt-4o": limits, "other": ModelLimits()}, model) is limits
    with pytest.raises(InvalidArgumentsError, match="received int"):
        model_limits_by_id(5, model)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentsError, match="maps model ids"):
        model_limits_by_id({"openai/gpt-4o": 3}, model)  # type: ignore[dict-item]


def test_a_budget_is_shared_by_copies_and_a_pickle_is_a_new_one() -> None:
    limits = ModelLimits(max_concurrent=3, requests_per_minute=120)
    assert copy.copy(limits) is limits
    assert copy.deepcopy({"limits": limits})["limits"] is limits
    again = pickle.loads(pickle.dumps(limits))
    assert again is not limits
    assert (again.max_concurrent, again.requests_per_minute) == (3, 120)


# -- the model the limits call ------------------------------------------------------------------


class Retryer:
    def __init__(self, max_attempts: int) -> None:
        self.max_attempts = max_attempts


def test_the_called_copy_makes_one_attempt_and_asks_litellm_for_no_retries() -> None:
    litellm_module = ModuleType("litellm")
    model = type("Model", (), {})()
    model.retryer = Retryer(3)
    model.client = litellm_module
    model.kwargs = {"temperature": 0}

    called = without_own_retries(model)

    assert called is not model
    assert called.retryer.max_attempts == 1
    assert called.kwargs == {"temperature": 0, "max_retries": 0}
    assert (model.retryer.max_attempts, model.kwargs) == (3, {"temperature": 0})  # untouched
    plain = type("Plain", (), {})()
    assert without_own_retries(plain) is plain


# -- a blocking caller (a smolagents managed agent, in its worker thread) -----------------------


class FlakyModel:
    """A sync model that fails with the given statuses, then answers."""

    model_id = "test/flaky"

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.calls = 0

    def generate(self, messages: Any, **kwargs: Any) -> str:
        self.calls += 1
        if self.statuses:
            raise ProviderError(self.statuses.pop(0))
        return "answer"


def test_a_blocking_call_is_retried_by_the_same_policy_and_told_to_the_listener() -> None:
    model = FlakyModel(503, 429)
    limited_model = LimitedModel(model, ModelLimits(max_concurrent=1, retry_backoff=0.001))
    heard: list[ModelRetry] = []
    token = MODEL_RETRY_LISTENER.set(heard.append)
    try:
        assert limited_model.generate([{"role": "user", "content": "hi"}]) == "answer"
    finally:
        MODEL_RETRY_LISTENER.reset(token)

    assert model.calls == 3
    assert [(r.attempt, r.status, r.model) for r in heard] == [
        (1, 503, "test/flaky"),
        (2, 429, "test/flaky"),
    ]


def test_a_blocking_call_gives_up_after_max_attempts_with_the_model_s_error() -> None:
    model = FlakyModel(503, 503, 503)
    limited_model = LimitedModel(model, ModelLimits(max_attempts=2, retry_backoff=0.001))
    with pytest.raises(ProviderError, match="503"):
        limited_model.generate([])
    assert model.calls == 2


async def test_a_blocking_call_waiting_for_a_slot_stops_when_its_task_is_cancelled() -> None:
    limits = ModelLimits(max_concurrent=1)
    limited_model = LimitedModel(FlakyModel(), limits)
    await limits._slots.acquire()  # type: ignore[union-attr]  # someone holds the only slot
    signal = CancelSignal()

    def in_worker_thread() -> Any:
        CURRENT_CANCEL.set(signal)
        return limited_model.generate([])

    call = asyncio.create_task(asyncio.to_thread(in_worker_thread))
    await until(lambda: limits.waiting == 1)
    signal.fire()
    with pytest.raises(AgentloopError, match="cancelled while its model call waited"):
        await call

    assert (limits.in_flight, limits.waiting) == (1, 0)  # the holder's slot, untouched
