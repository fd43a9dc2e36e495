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
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import anyio

from .._text import describe
from .._util import ModelCall, WrapperModel, reset_context_var
from ..core._approving import ASKING_PATH
from ..core._bridge import LoopBridge
from ..core._budgets import CURRENT_BUDGET, RunBudget
from ..core._slots import Lease
from ..core._threads import ThreadKeeper
from ..engine.scope import RunScope
from ..errors import AgentloopError, InvalidArgumentsError, NestingTooDeepError
from ..tracing._spans import Tracing
from ._model_calls import AwaitedReply
from ._stepping import ModelRequest, StepModel, Stepping

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
        awaited: AwaitedReply | None,
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
        self._model_call = (
            ModelCall(awaited)
            if awaited is not None
            else ModelCall(self._generate_in_thread, through_generate=True)
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
    ) -> Any:
        """Run the controller on `task` to its answer; one turn at a time per run."""

        def start() -> Iterator[Any]:  # in the run's first controller thread
            return self._built().run(  # type: ignore[no-any-return]
                task,
                stream=True,
                reset=reset,
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

    async def _generate_in_thread(self, messages: Any, kwargs: dict[str, Any]) -> Any:
        """A sync-only model's reply: its blocking `generate`, in a controller thread under
        the model-call bound (it only waits on the model: it never waits for another run)."""
        model = self._model.innermost
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


def _spent() -> dict[str, int | float]:
    """What the current turn's models spent (its run span's closing attributes)."""
    budget = CURRENT_BUDGET.get()
    return {} if budget is None else budget.span_attributes()


def _register_step_callback(controller: Any, callback: Callable[..., None]) -> None:
    """Register `callback` for the controller's action steps (smolagents' callback registry)."""
    from smolagents.memory import ActionStep

    controller.step_callbacks.register(ActionStep, callback)
