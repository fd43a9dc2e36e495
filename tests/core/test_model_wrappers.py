"""`WrapperModel`, the base of the metered, traced and replaying models: the same forwarding,
`.wrapped`, copy and pickle rules for all three, and each one's awaited calls routed through
its hook (a blocking call is refused)."""

from __future__ import annotations

import asyncio
import copy
import pickle
import threading
from types import SimpleNamespace
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from smolagents.models import ChatMessage, MessageRole
from smolagents.monitoring import TokenUsage

from agentloop import BudgetExceededError
from agentloop._util import ModelCall, WrapperModel
from agentloop.agent._durable import ReplayingModel
from agentloop.core._budgets import CURRENT_BUDGET, MeteredModel, RunBudget, metered
from agentloop.journal.base import EntryKind
from agentloop.tracing._model_spans import TracedModel, traced_model
from agentloop.tracing._spans import Tracing


class Inner:
    """A duck-typed smolagents model that counts its calls (picklable: module level)."""

    def __init__(self, model_id: str = "acme/m") -> None:
        self.model_id = model_id
        self.calls: list[str] = []

    def generate(self, messages: Any, **kwargs: Any) -> ChatMessage:
        self.calls.append("generate")
        return ChatMessage(
            role=MessageRole.ASSISTANT,
            content=f"reply {self.calls.count('generate')}",
            token_usage=TokenUsage(input_tokens=3, output_tokens=4),
        )

    def __call__(self, messages: Any, **kwargs: Any) -> ChatMessage:
        self.calls.append("call")
        return self.generate(messages, **kwargs)

    def generate_stream(self, messages: Any, **kwargs: Any) -> Any:
        yield "streamed"


class Tagging(WrapperModel):
    """A wrapper with a field of its own, whose hook records what it was given."""

    __slots__ = ("tag",)

    def __init__(self, wrapped: Any, tag: str) -> None:
        super().__init__(wrapped)
        self.tag = tag

    async def _areply(self, proceed: ModelCall, messages: Any, kwargs: dict[str, Any]) -> Any:
        reply = await proceed(messages, kwargs)
        return (self.tag, proceed, reply)


MESSAGES = [{"role": "user", "content": [{"type": "text", "text": "hello"}]}]


def test_unknown_attributes_are_read_written_and_deleted_on_the_wrapped_model() -> None:
    inner = Inner()
    model = Tagging(inner, "t")
    assert model.model_id == "acme/m"
    model.temperature = 0.5
    assert inner.temperature == 0.5  # type: ignore[attr-defined]
    del model.temperature
    assert not hasattr(inner, "temperature")
    model.tag = "u"  # the wrapper's own field stays on the wrapper
    assert model.tag == "u" and not hasattr(inner, "tag")
    with pytest.raises(AttributeError, match="max_tokens"):
        _ = model.max_tokens


def test_generate_stream_is_the_wrapped_models_own_and_only_if_it_has_one() -> None:
    model = Tagging(Inner(), "t")
    assert list(model.generate_stream(MESSAGES)) == ["streamed"]
    without = Tagging(SimpleNamespace(generate=lambda m: m), "t")
    assert not hasattr(without, "generate_stream")  # smolagents checks before streaming


def test_dunder_names_are_the_wrappers_own() -> None:
    class WithDeepcopy(Inner):
        def __deepcopy__(self, memo: dict[int, Any]) -> Any:
            return "the inner model's copy"

    model = Tagging(WithDeepcopy(), "t")
    assert not hasattr(model, "__deepcopy__")
    assert isinstance(copy.deepcopy(model), Tagging)


def test_wrapped_is_one_level_down() -> None:
    inner = Inner()
    traced = traced_model(inner, Tracing())
    outer = metered(traced)
    assert outer.wrapped is traced and traced.wrapped is inner
    assert metered(outer) is outer and traced_model(traced, Tracing()) is traced
    replaying = ReplayingModel(outer, _journal())
    assert replaying.wrapped is outer
    assert repr(replaying).startswith("ReplayingModel(MeteredModel(TracedModel(<")


def test_a_subclass_must_declare_its_fields() -> None:
    with pytest.raises(TypeError, match="without `__slots__`"):

        class Forgetful(WrapperModel):
            pass


def test_a_copy_is_the_wrapper_around_the_same_model_and_a_deep_copy_copies_it() -> None:
    inner = Inner()
    model = Tagging(inner, "t")
    shallow = copy.copy(model)
    assert type(shallow) is Tagging and shallow.tag == "t" and shallow.wrapped is inner
    deep = copy.deepcopy(model)
    assert type(deep) is Tagging and deep.tag == "t" and deep.wrapped is not inner
    assert deep.model_id == "acme/m"


def test_a_pickle_is_the_wrapper_with_its_model_inside() -> None:
    model = MeteredModel(TracedModel(Inner(), Tracing()))
    back = pickle.loads(pickle.dumps(model))
    assert type(back) is MeteredModel and type(back.wrapped) is TracedModel
    assert type(back.wrapped.wrapped) is Inner and back.model_id == "acme/m"
    assert asyncio.run(_call(back)).content == "reply 1"
    assert pickle.loads(pickle.dumps(Tagging(Inner(), "t"))).tag == "t"


def test_a_wrapper_holding_what_cannot_be_pickled_cannot_be_pickled() -> None:
    model = ReplayingModel(Inner(), _journal(log=SimpleNamespace(lock=threading.Lock())))
    with pytest.raises(TypeError, match="lock"):
        pickle.dumps(model)


async def test_calls_go_through_each_hook_down_to_the_model_call() -> None:
    inner = Inner()
    model = Tagging(Tagging(inner, "inner"), "outer")
    call = _model_call(inner)
    tag, proceed, (inner_tag, bottom, reply) = await model.agenerate_through(
        call, MESSAGES, {"stop_sequences": ["x"]}
    )
    assert (tag, inner_tag, bottom, reply.content) == ("outer", "inner", call, "reply 1")
    assert proceed.through_generate is call.through_generate
    assert inner.calls == ["generate"] and model.innermost is inner


def test_a_blocking_call_is_refused_by_a_wrapper_without_a_blocking_hook() -> None:
    inner = Inner()
    for model in (
        Tagging(inner, "t"),
        TracedModel(inner, Tracing()),
        ReplayingModel(inner, _journal()),
    ):
        for call in (model.generate, model):
            with pytest.raises(TypeError, match="called on the event loop"):
                call(MESSAGES)
    assert inner.calls == []  # nothing reached the model past the span and journal


@pytest.mark.parametrize("via", ["generate", "call"])
def test_a_metered_model_charges_blocking_calls_too(via: str) -> None:
    inner = Inner()
    model = MeteredModel(inner)
    budget = RunBudget(run_id="r", max_model_calls=1, max_total_tokens=None)
    token = CURRENT_BUDGET.set(budget)
    try:
        call = model.generate if via == "generate" else model
        assert call(MESSAGES).content == "reply 1"
        assert (budget.usage.model_calls, budget.usage.total_tokens) == (1, 7)
        with pytest.raises(BudgetExceededError, match="1 model calls"):
            call(MESSAGES)
    finally:
        CURRENT_BUDGET.reset(token)


async def test_a_metered_model_charges_each_call() -> None:
    model = MeteredModel(Inner())
    budget = RunBudget(run_id="r", max_model_calls=1, max_total_tokens=None)
    token = CURRENT_BUDGET.set(budget)
    try:
        await _call(model)
        assert (budget.usage.model_calls, budget.usage.total_tokens) == (1, 7)
        with pytest.raises(BudgetExceededError, match="1 model calls"):
            await _call(model)
    finally:
        CURRENT_BUDGET.reset(token)
    assert (await _call(model)).content  # no run, no budget: not charged


@pytest.mark.parametrize("through_generate", [False, True])
async def test_a_traced_model_makes_a_chat_span_per_call(through_generate: bool) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        await _call(TracedModel(Inner(), Tracing(provider)), through_generate)
        (span,) = exporter.get_finished_spans()
        assert span.name == "chat acme/m"
        assert span.attributes is not None
        assert span.attributes["gen_ai.usage.output_tokens"] == 4
        assert span.attributes["input.value"] == "hello"
    finally:
        provider.shutdown()


async def test_a_replaying_model_answers_from_the_journal_then_records_live_replies() -> None:
    inner, added = Inner(), []
    entry = SimpleNamespace(data={"content": "recorded", "input_tokens": 1, "output_tokens": 2})
    taken: list[Any] = [entry]
    replay = SimpleNamespace(take=lambda kind, what: taken.pop(), done=True)
    journal = _journal(
        replay=replay, live=False, log=SimpleNamespace(add=lambda *a: added.append(a))
    )
    model = ReplayingModel(inner, journal)
    assert (await _call(model)).content == "recorded" and inner.calls == []
    journal.live = True
    assert (await _call(model)).content == "reply 1"
    assert added == [
        (EntryKind.MODEL_REPLY, {"content": "reply 1", "input_tokens": 3, "output_tokens": 4})
    ]


def _model_call(inner: Inner, through_generate: bool = False) -> ModelCall:
    """The innermost call, as the engine builds it: here, the model's `generate`."""

    async def reply(messages: Any, kwargs: dict[str, Any]) -> Any:
        return inner.generate(messages, **kwargs)

    return ModelCall(reply, through_generate)


async def _call(model: WrapperModel, through_generate: bool = False) -> Any:
    return await model.agenerate_through(
        _model_call(model.innermost, through_generate), MESSAGES, {}
    )


def _journal(**fields: Any) -> Any:
    """What `ReplayingModel` reads of a `RunJournal`."""
    defaults: dict[str, Any] = {"replay": None, "live": True, "log": None}
    return SimpleNamespace(**(defaults | fields), wake_scope=lambda: None)
