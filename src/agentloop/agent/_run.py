"""One controller run: its scope, its bridge, its fresh CodeAgent, and how its steps are driven.

`AsyncAgent` holds configuration; a `ControllerRun` holds the state of one run (or of one
session's conversation). A turn is admitted under the agent's run limiter
(`max_concurrent_runs`, FIFO, waiting on the loop without a thread), then driven step by step
(see `_stepping`): the controller's code runs in a controller thread under the agent's thread
limiter (`max_controller_threads`) until it asks for its model; the model is awaited on the
loop, through the agent's wrappers (budget, span, journal), with no thread held; then the code
goes on in whichever controller thread is free. A sync-only model's `generate` runs in a
controller thread too, under its own bound (`max_model_threads`). The generated code reaches
the loop through the run's `LoopBridge`. Ending the run (normally, by error or by
cancellation) interrupts the controller, fails its in-flight tool calls and its model call at
once, and lets the scope cancel its tasks.

`RUN_STACK` records which agents' runs enclose the current code: to bound nesting, to refuse a
blocking `run()` of an agent from inside its own run, and to let a run nested inside a run of
the same agent (an agent delegating to itself) go ahead without a run slot or a thread slot
when none is free, so self-delegation cannot starve even at a limit of 1: its ancestor holds
the slots and waits for it. (Lending the slots for the whole wait instead would let
*unrelated* queued runs start too, and the bounds would no longer hold.) Such nested runs are
bounded by `max_run_depth`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import anyio

from .._text import describe
from .._util import REPLYING_MODEL, ModelCall, WrapperModel, reset_context_var
from ..core._approving import ASKING_PATH
from ..core._bridge import LoopBridge
from ..core._budgets import CURRENT_BUDGET, RunBudget
from ..core._slots import Lease
from ..core._threads import ThreadKeeper
from ..engine.scope import RunScope
from ..errors import AgentloopError, InvalidArgumentsError, NestingTooDeepError
from ..tracing._spans import Tracing
from ._fallback import ModelChain, ModelLink
from ._stepping import ModelRequest, StepModel, Stepping, reply_text

__all__ = [
    "DEFAULT_MAX_CONCURRENT_RUNS",
    "DEFAULT_MAX_CONTROLLER_THREADS",
    "DEFAULT_MAX_MODEL_THREADS",
    "RUN_STACK",
    "ControllerRun",
    "RunLimiters",
    "entered_run",
]

T = TypeVar("T")

logger = logging.getLogger("agentloop.agent")

RUN_STACK: ContextVar[tuple[int, ...]] = ContextVar("agentloop_run_stack", default=())
"""`id()`s of the agents whose runs enclose the current code, outermost first."""


@contextlib.contextmanager
def entered_run(agent_key: int, agent_name: str, max_depth: int) -> Iterator[None]:
    """Mark a run of agent `agent_key` as enclosing the code in the block; refuse to nest
    deeper than `max_depth` runs."""
    stack = RUN_STACK.get()
    if len(stack) >= max_depth:
        raise NestingTooDeepError(
            f"run of agent `{agent_name}` refused: {len(stack)} runs already enclose it (an "
            "agent delegating to itself, or agents delegating to each other), and the limit "
            f"is {max_depth} (`Limits.max_run_depth`). Do the work here instead of "
            "delegating it again."
        )
    token = RUN_STACK.set((*stack, agent_key))
    path = ASKING_PATH.set((*ASKING_PATH.get(), agent_name))
    try:
        yield
    finally:
        reset_context_var(ASKING_PATH, path)
        reset_context_var(RUN_STACK, token)


class ControllerRun:
    """Drives one controller agent; the owner closes `scope` afterwards."""

    def __init__(
        self,
        scope: RunScope,
        controller_maker: Callable[[RunScope, LoopBridge, StepModel], Callable[[], Any]],
        *,
        model: WrapperModel,
        chain: ModelChain,
        limiters: RunLimiters,
        threads: ThreadKeeper,
        tracing: Tracing,
        agent_name: str,
        nested: bool = False,
    ) -> None:
        self.scope = scope
        self._nested = nested
        self.bridge = LoopBridge(
            asyncio.get_running_loop(),
            name=f"run `{scope.scope_id}`",
            # Nobody is left to cancel the run once its loop is gone: stop the controller from
            # its own thread, so it makes no further model calls.
            on_loop_closed=self._interrupt,
        )
        self._model = model
        self._chain = chain
        [first, *fallbacks] = chain.links
        self._model_call = ModelCall(
            self._call_model, through_generate=first.awaited is None and not fallbacks
        )
        step_model = StepModel(getattr(model, "model_id", None), self._reply, self.bridge)
        self._make_controller = controller_maker(scope, self.bridge, step_model)
        self.controller: Any = None
        """The run's `CodeAgent`, built in its first controller thread (then kept: a session's
        turns share it)."""
        self.span_attributes: dict[str, Any] = {}
        """Extra attributes of the run's span (a resumed run says how much it replayed)."""
        self.on_step: Callable[..., None] | None = None
        """Called with each smolagents step (in the controller thread), e.g. by a stream."""
        self.on_delta: Callable[[int, str], None] | None = None
        """Called on the loop with the step's number and each chunk of text the model writes,
        as it writes it (a stream that wants them sets it; without it the model is not asked
        to stream)."""
        self.on_fallback: Callable[[int, str, str, Exception], None] | None = None
        """Called on the loop when a call moves to the next model of the chain: the step's
        number, the model that failed, the one tried next, and the error."""
        self.budget: RunBudget | None = None
        """The budget of its latest turn: what it spent (set by the turn)."""
        self._limiters = limiters
        self._threads = threads
        self._tracing = tracing
        self._agent_name = agent_name
        self._lock = asyncio.Lock()
        self._stepping: Stepping | None = None
        self._stopped = False

    async def step(
        self,
        task: str,
        *,
        reset: bool,
        additional_args: Mapping[str, Any] | None,
        max_steps: int | None,
        images: Sequence[Any] | None = None,
    ) -> Any:
        """Run the controller on `task` (and its PIL `images`) to its answer; one turn at a
        time per run."""

        def start() -> Iterator[Any]:  # in the run's first controller thread
            return self._built().run(  # type: ignore[no-any-return]
                task,
                stream=True,
                reset=reset,
                images=list(images) if images else None,
                additional_args=dict(additional_args) if additional_args else None,
                max_steps=max_steps,
            )

        async with self._lock:
            return await self._tracing.traced_run(  # the run's span: task in, answer out
                self._agent_name,
                self.scope.scope_id,
                task,
                self._drive(Stepping(start)),
                self.span_attributes,
                totals=_spent,
            )

    async def _drive(self, stepping: Stepping) -> Any:
        """Admit the turn, then alternate: code in a controller thread, model on the loop."""
        admission = Lease()
        await self._take(admission, self._limiters.runs)
        self._stepping = stepping
        context = contextvars.copy_context()  # one for the whole turn, as a thread would have
        advance = functools.partial(context.run, stepping.advance)
        try:
            while (request := await self._in_controller_thread(advance)) is not None:
                try:
                    request.answer(await self._reply(request))
                except Exception as exc:  # the model's error: the step handles it
                    request.fail(exc)
            return stepping.output
        except Exception:
            raise  # raised by the controller, which has ended
        except BaseException as exc:  # cancelled between two advances or during one
            self.stop()
            stepping.finish()
            if isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
                raise  # cancelled, or collected with its loop gone: not the run's to change
            raise self._ended_by(exc) from exc  # SystemExit & co. from the model, on the loop
        finally:
            self._stepping = None
            admission.release()

    async def _reply(self, request: ModelRequest) -> Any:
        """The model's reply to `request`, through the agent's wrappers."""
        return await self._model.agenerate_through(
            self._model_call, request.messages, request.kwargs
        )

    async def _call_model(self, messages: Any, kwargs: dict[str, Any]) -> Any:
        """The reply of the first model of the chain that gives one (under every wrapper),
        streamed to `on_delta` when a stream wants the text; `REPLYING_MODEL` says whose."""
        REPLYING_MODEL.set(None)
        on_delta = self.on_delta
        step = int(getattr(self.controller, "step_number", 0))
        on_text = functools.partial(on_delta, step) if on_delta is not None else None
        links = self._chain.links
        for position, link in enumerate(links):
            try:
                reply = await self._link_reply(link, messages, kwargs, on_text)
            except Exception as error:
                if position + 1 == len(links) or not self._chain.moves_on(error):
                    raise
                self._moved_on(step, link, links[position + 1], error)
                continue
            REPLYING_MODEL.set(link.model)
            return reply
        raise AssertionError("unreachable: the last model replies or raises")

    async def _link_reply(
        self,
        link: ModelLink,
        messages: Any,
        kwargs: dict[str, Any],
        on_text: Callable[[str], None] | None,
    ) -> Any:
        """One model's reply, through its provider budget if it has one: as it comes where
        it can stream and a stream wants the text, else whole (and handed to the stream
        whole)."""

        async def call(messages: Any, kwargs: dict[str, Any]) -> Any:
            if on_text is not None and link.streamed is not None:
                return await link.streamed(messages, kwargs, on_text)
            if link.awaited is not None:
                reply = await link.awaited(messages, kwargs)
            else:
                reply = await self._generate_in_thread(link.model, messages, kwargs)
            if on_text is not None:
                on_text(reply_text(getattr(reply, "content", reply)))
            return reply

        if link.budget is None:
            return await call(messages, kwargs)
        return await link.budget.agenerate_through(
            ModelCall(call, through_generate=link.awaited is None), messages, kwargs
        )

    def _moved_on(
        self, step: int, failed: ModelLink, next_link: ModelLink, error: Exception
    ) -> None:
        """Say that a call moves to the next model: on the call's span and the run's stream."""
        logger.info(
            "run `%s`: model `%s` failed (%s); trying `%s`",
            self.scope.scope_id,
            failed.model_id,
            describe(error),
            next_link.model_id,
        )
        self._tracing.add_event(
            "agentloop.model.fallback",
            {
                "agentloop.model.failed": failed.model_id,
                "agentloop.model.next": next_link.model_id,
                "exception.type": type(error).__name__,
                "exception.message": describe(error),
            },
        )
        on_fallback = self.on_fallback
        if on_fallback is not None:
            on_fallback(step, failed.model_id, next_link.model_id, error)

    async def _generate_in_thread(self, model: Any, messages: Any, kwargs: dict[str, Any]) -> Any:
        """A sync-only model's reply: its blocking `generate`, in a controller thread under
        the model-call bound (it only waits on the model: it never waits for another run)."""
        return await self._in_controller_thread(
            functools.partial(model.generate, messages, **kwargs), self._limiters.model_calls
        )

    async def _take(self, lease: Lease, limiter: anyio.CapacityLimiter) -> None:
        """A slot of `limiter` for `lease`, queueing fairly (on the loop, no thread) when none
        is free; a nested run of the same agent goes ahead on its ancestor's."""
        limiters = (limiter,)
        if not (lease.acquire_nowait(limiters) or self._nested):
            await lease.acquire(limiters)

    async def _in_controller_thread(
        self, call: Callable[[], T], limiter: anyio.CapacityLimiter | None = None
    ) -> T:
        """Run `call` in a controller thread holding a slot of `limiter` (the code's, unless
        given); the span current here is current there."""
        lease = Lease()
        await self._take(lease, limiter or self._limiters.threads)
        try:
            ok, value = await self._threads.run_in_thread(call, on_thread_end=lease.end)
        except asyncio.CancelledError:
            self.stop()
            raise
        if not ok:
            if isinstance(value, Exception):
                raise value
            raise self._ended_by(value) from value
        return cast(T, value)

    def _ended_by(self, exc: BaseException) -> AgentloopError:
        """SystemExit, KeyboardInterrupt & co. raised by model code or the model belong to
        this run: re-raised as they are, they would stop the caller's event loop (a server)."""
        return AgentloopError(
            f"run `{self.scope.scope_id}` ended: its controller raised {describe(exc)}."
        )

    def _built(self) -> Any:
        """The controller, built now if this is the run's first step."""
        controller = self.controller
        if controller is None:
            controller = self.controller = self._make_controller()
            _register_step_callback(controller, self._step_done)
            if self._stopped:  # stopped while it was being built
                controller.interrupt()
        return controller

    def _interrupt(self) -> None:
        self._stopped = True
        controller = self.controller
        if controller is not None:
            controller.interrupt()

    def _step_done(self, step: Any, **_: Any) -> None:
        on_step = self.on_step
        if on_step is not None:
            on_step(step)

    def _stopped_error(self) -> AgentloopError:
        return AgentloopError(f"run `{self.scope.scope_id}` was stopped.")

    def stop(self) -> None:
        """Interrupt the controller and fail its in-flight and future tool and model calls."""
        stepping = self._stepping
        if stepping is not None and stepping.stopped is None:
            stepping.stopped = self._stopped_error()
        self._interrupt()
        self.bridge.close()

    def release(self) -> None:
        """Let go of the controller and what builds it, once the run is over (after `stop`).

        The controller's tools, callbacks and model all point back at this run, and the run
        at them: left so, a finished run is freed only by the cyclic garbage collector, and
        a process of many runs pays for them in its full collections (a service's 200 runs
        made a 120 ms pause, docs/performance.md). Cut here, reference counting frees the
        run when its last holder lets go."""
        self._stopped = True
        controller, self.controller = self.controller, None
        if controller is not None:
            _drop_tracebacks(controller)
        self._make_controller = _released
        self._model_call = ModelCall(_no_reply)


DEFAULT_MAX_CONCURRENT_RUNS = 10_000
"""Runs of one agent in progress at once; more wait their turn (FIFO, holding no thread). A
run waiting for an async model holds no thread, so what bounds this is memory (see
docs/performance.md, "Many runs (scaling)")."""

DEFAULT_MAX_CONTROLLER_THREADS = 128
"""Threads running one agent's model-written code at once.
Code that blocks in a long `wait_for_tasks` holds its thread meanwhile: raise this for runs
whose code waits long, lower it to bound the process's threads."""

DEFAULT_MAX_MODEL_THREADS = 1000
"""Threads waiting on a sync-only model's blocking `generate` at once, per agent (an async
model needs none). Such a thread waits on I/O at no CPU; 1000 is where the thread-per-run
design was still fast (docs/performance.md, W6)."""


@dataclass(frozen=True, slots=True)
class RunLimiters:
    """An agent's bounds on its runs: how many run at once (`runs`, held for a turn), how
    many controller threads run their code (`threads`), and how many wait on a sync-only
    model's blocking call (`model_calls`; such a thread only waits on I/O, so the bound is
    wide, as the thread-per-run design's was)."""

    runs: anyio.CapacityLimiter
    threads: anyio.CapacityLimiter
    model_calls: anyio.CapacityLimiter

    @classmethod
    def of(
        cls, max_concurrent_runs: int, max_controller_threads: int, max_model_threads: int
    ) -> RunLimiters:
        """The limiters for an agent's options, each checked."""
        for option, value in (
            ("max_concurrent_runs", max_concurrent_runs),
            ("max_controller_threads", max_controller_threads),
            ("max_model_threads", max_model_threads),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidArgumentsError(
                    f"`{option}` must be a positive int, received {value!r}."
                )
        return cls(
            anyio.CapacityLimiter(max_concurrent_runs),
            anyio.CapacityLimiter(max_controller_threads),
            anyio.CapacityLimiter(max_model_threads),
        )


def _drop_tracebacks(controller: Any) -> None:
    """Forget the tracebacks of the errors a controller's steps kept in its memory: each
    one's frames hold the controller, which holds the step, a cycle the garbage collector
    alone would free (with the run's whole memory); the errors and their messages stay."""
    memory = getattr(controller, "memory", None)
    for step in getattr(memory, "steps", None) or ():
        error = getattr(step, "error", None)
        for _ in range(100):  # a chain the model's code linked into a loop ends too
            if not issubclass(type(error), BaseException):
                break
            _TRACEBACK.__set__(error, None)
            cause = _CAUSE.__get__(error)
            error = cause if cause is not None else _CONTEXT.__get__(error)


# `BaseException`'s own descriptors: an exception class the model's code defined may put a
# property of its own under these names (or `__bool__`, `__class__`); none of its code runs.
_TRACEBACK: Any = vars(BaseException)["__traceback__"]
_CAUSE: Any = vars(BaseException)["__cause__"]
_CONTEXT: Any = vars(BaseException)["__context__"]


def _released() -> Any:
    raise AgentloopError("the run is over: its controller was let go (`ControllerRun.release`).")


async def _no_reply(messages: Any, kwargs: dict[str, Any]) -> Any:
    return _released()


def _spent() -> dict[str, int | float]:
    """What the current turn's models spent (its run span's closing attributes)."""
    budget = CURRENT_BUDGET.get()
    return {} if budget is None else budget.span_attributes()


def _register_step_callback(controller: Any, callback: Callable[..., None]) -> None:
    """Register `callback` for the controller's action steps (smolagents' callback registry)."""
    from smolagents.memory import ActionStep

    controller.step_callbacks.register(ActionStep, callback)
