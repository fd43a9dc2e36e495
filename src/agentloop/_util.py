"""Small helpers every layer shares: the "not given" sentinel, a safe context-variable reset,
reporting public objects under their public module, and the base of every model wrapper.

Kept apart from `_text` (bounded text) and `errors` because they are neither: each is a few
lines that two or more packages would otherwise write again.

`prefer_local_cost_map` is here because the public face calls it before anything could
import litellm, and the places that import litellm themselves say the same again.

`WrapperModel` is here because three layers wrap the controller's model (`core` charges each
call to the run's budget, `tracing` puts a span around it, `agent` replays and records it) and
none of them may import another's module. Each used to write its own forwarding, with its own
answer to copying and pickling; one base gives them the same rules (see its docstring). It
duck-types the smolagents model, so it imports nothing of smolagents.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any, ClassVar, Final

__all__ = [
    "REPLYING_MODEL",
    "UNSET",
    "ModelCall",
    "Unset",
    "WrapperModel",
    "model_name",
    "prefer_local_cost_map",
    "report_as",
    "reset_context_var",
]


class Unset:
    """The type of `UNSET`: a keyword argument that was not given (where `None` means
    something, such as "no limit")."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = Unset()


def reset_context_var(var: ContextVar[Any], token: Token[Any]) -> None:
    """`var.reset(token)`, except where there is nothing to undo: a coroutine closed by the
    garbage collector (its loop gone) runs its `finally` in another context, where the reset
    would raise."""
    with contextlib.suppress(ValueError):
        var.reset(token)


def prefer_local_cost_map() -> None:
    """Have litellm read its model cost map from the copy installed with it, not the network,
    unless the application chose otherwise (`LITELLM_LOCAL_MODEL_COST_MAP` already set).

    Importing litellm fetches the map from GitHub by default: a few seconds at every start
    (up to its 5 s timeout, with retries in a background thread, when offline or firewalled),
    before a library user's first model even exists. agentloop prices replies from that map,
    and the installed copy is the one that matches the installed litellm. This is the one
    process-wide default agentloop sets; docs/models.md ("Connecting to a provider") says how
    to get the network fetch back."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def report_as(module: str, namespace: MutableMapping[str, Any], names: Iterable[str]) -> None:
    """Make the classes and functions `names` of `namespace` (a public face's globals) report
    `module` as theirs, so reprs, docs and pickles name the public path, not a private one.

    Only agentloop's own objects are touched, and only those not already reported under a
    shorter public path (`agentloop` wins over `agentloop.journal`)."""
    for name in names:
        obj = namespace.get(name)
        if not isinstance(obj, type) and not callable(obj):
            continue
        current = getattr(obj, "__module__", "")
        if not current.startswith("agentloop") or current == "agentloop":
            continue
        if getattr(obj, "__qualname__", name) != name:
            continue
        obj.__module__ = module


def loaded_on_first_use(
    namespace: MutableMapping[str, Any], lazy: Mapping[str, str]
) -> Callable[[str], Any]:
    """A public face's module `__getattr__`: each name of `lazy` (name -> the submodule that
    defines it, relative to the face) is imported on first use, reported under the face's
    module and kept in `namespace`; so `import agentloop` does not import smolagents."""
    face = str(namespace["__name__"])

    def __getattr__(name: str) -> Any:
        submodule = lazy.get(name)
        if submodule is None:
            raise AttributeError(f"module {face!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{face}.{submodule}"), name)
        report_as(face, {name: value}, [name])
        namespace[name] = value
        return value

    return __getattr__


REPLYING_MODEL: ContextVar[Any] = ContextVar("agentloop_replying_model", default=None)
"""The model that made the reply the innermost `ModelCall` just returned, set by it before it
returns (the wrappers await it in the same context, so they read it after): with a fallback
chain it may not be the first model. The span and the journal read its id (`model_name`),
the budget prices the reply as its."""


def model_name(model: Any) -> str:
    """A model's id (`openai/gpt-4o`), or its class name when it has none."""
    model_id = getattr(model, "model_id", None)
    return model_id if isinstance(model_id, str) and model_id else type(model).__name__


@dataclass(frozen=True, slots=True)
class ModelCall:
    """One way to get a model's reply on the event loop: `await call(messages, kwargs)`.

    The engine builds the innermost one for each run (the model's own async path, or its
    blocking `generate` in a controller thread); each wrapper gets the next one down.
    `through_generate` says the reply comes from the model's own `generate`, where
    openinference's instrumentation (if on) already makes an LLM span.
    """

    reply: Callable[[Any, dict[str, Any]], Awaitable[Any]]
    through_generate: bool = False

    async def __call__(self, messages: Any, kwargs: dict[str, Any]) -> Any:
        return await self.reply(messages, kwargs)


class WrapperModel:
    """A model that wraps another (`wrapped`) and stands in for it; the base of agentloop's
    metered, traced and replaying models. The rules every wrapper follows:

    - **Calls** are awaited on the event loop, never made from the controller's thread (so a
      run waiting for its model holds no thread): `await wrapper.agenerate_through(call,
      messages, kwargs)` goes through each wrapper's hook, outermost first, down to `call`,
      which calls the model itself (see `ModelCall`). A subclass overrides only the hook,
      `_areply(proceed, messages, kwargs)`; the base's just awaits `proceed`. A blocking
      `generate(messages, ...)` or `model(messages, ...)` goes through the blocking hook,
      `_reply(call, messages, args, kwargs)`, which only a wrapper that also serves plain
      smolagents agents has (the budget's); others refuse it rather than be bypassed.
    - **Attributes**: a name the wrapper does not have is read from, written to and deleted
      on the wrapped model (`wrapper.model_id`, `wrapper.temperature = 0`). The wrapper's own
      fields are its `__slots__` (every subclass declares them) and are set on the wrapper.
      Names starting with `__` are never forwarded, so `copy`, `pickle` and the like see
      the wrapper, not the model inside.
    - **Copies and pickles** are of the wrapper: the same class around the same fields, the
      wrapped model included (`copy.copy` shares it, `copy.deepcopy` and pickle copy it). A
      field that cannot be pickled (a run's journal) makes the wrapper unpicklable.

    Wrappers nest (`MeteredModel(TracedModel(model))`); `wrapped` is one level down, and
    `innermost` is the model itself.
    """

    __slots__ = ("wrapped",)

    wrapped: Any
    """The model inside (one level down, when wrappers nest)."""

    _fields: ClassVar[frozenset[str]] = frozenset(__slots__)
    """The wrapper's own attribute names: its slots and those of its bases."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        slots = cls.__dict__.get("__slots__")
        if slots is None:
            raise TypeError(
                f"`{cls.__name__}` subclasses WrapperModel without `__slots__`: declare its own "
                "fields there (`__slots__ = ()` if none), or they would be set on the wrapped "
                "model."
            )
        own = (slots,) if isinstance(slots, str) else tuple(slots)
        cls._fields = frozenset(own).union(*(getattr(b, "_fields", ()) for b in cls.__mro__))

    def __init__(self, wrapped: Any) -> None:
        object.__setattr__(self, "wrapped", wrapped)

    @property
    def innermost(self) -> Any:
        """The model under every wrapper."""
        model = self.wrapped
        while isinstance(model, WrapperModel):
            model = model.wrapped
        return model

    async def agenerate_through(
        self, call: ModelCall, messages: Any, kwargs: dict[str, Any]
    ) -> Any:
        """The reply to one model call, through this wrapper's hook and those inside it, down
        to `call`."""
        inner = self.wrapped
        if isinstance(inner, WrapperModel):

            async def through_inner(messages: Any, kwargs: dict[str, Any]) -> Any:
                return await inner.agenerate_through(call, messages, kwargs)

            proceed = ModelCall(through_inner, call.through_generate)
        else:
            proceed = call
        return await self._areply(proceed, messages, kwargs)

    async def _areply(self, proceed: ModelCall, messages: Any, kwargs: dict[str, Any]) -> Any:
        """The hook: the reply to one model call; `proceed` gets it from the next level down."""
        return await proceed(messages, kwargs)

    def generate(self, messages: Any, *args: Any, **kwargs: Any) -> Any:
        return self._reply(self.wrapped.generate, messages, args, kwargs)

    def __call__(self, messages: Any, *args: Any, **kwargs: Any) -> Any:
        return self._reply(self.wrapped, messages, args, kwargs)

    def _reply(
        self, call: Callable[..., Any], messages: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """The blocking hook, for a wrapper that also serves a plain smolagents agent (which
        calls `generate` in its thread): refused unless the subclass has one."""
        raise TypeError(
            f"`{type(self).__name__}` is called on the event loop (`agenerate_through`): a "
            "blocking call would skip what it does."
        )

    def __getattr__(self, name: str) -> Any:
        # Only reached for names the wrapper lacks. An unset field (during a copy or unpickle,
        # before `__setstate__`) and `__` names (`__deepcopy__`, `__getnewargs__`...) stay its own.
        if name in self._fields or name[:2] == "__":
            raise AttributeError(f"`{type(self).__name__}` has no attribute `{name}`")
        return getattr(self.wrapped, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._fields:
            object.__setattr__(self, name, value)
        else:
            setattr(self.wrapped, name, value)

    def __delattr__(self, name: str) -> None:
        if name in self._fields:
            object.__delattr__(self, name)
        else:
            delattr(self.wrapped, name)

    def __getstate__(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._fields if hasattr(self, name)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        inner = repr(self.wrapped) if hasattr(self, "wrapped") else "<unset>"
        return f"{type(self).__name__}({inner})"
