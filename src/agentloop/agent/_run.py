"""One controller run: its scope, its bridge, its fresh CodeAgent, and its controller thread.

`AsyncAgent` holds configuration; a `ControllerRun` holds the state of one run (or of one
session's conversation). The smolagents agent loop is blocking, so it runs in a controller
thread under the agent's controller limiter; its generated code reaches the loop through the
run's `LoopBridge`. Ending the run (normally, by error or by cancellation) interrupts the
controller, fails its in-flight tool calls at once, and lets the scope cancel its tasks.

`RUN_STACK` records which agents' runs enclose the current code: to bound nesting, to refuse a
blocking `run()` of an agent from inside its own run, and to let a run nested inside a run of
the same agent (an agent delegating to itself) go ahead on its ancestor's controller slot when
none is free, so self-delegation cannot starve even at `max_concurrent_runs=1`. (Lending the
slot for the whole wait instead would let *unrelated* queued runs start too, and the bound on
controller threads would no longer hold.) Such nested runs are bounded by `max_run_depth`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any

import anyio

from .._text import describe
from .._util import reset_context_var
from ..core._approving import ASKING_PATH
from ..core._bridge import LoopBridge
from ..core._slots import Lease
from ..core._threads import ThreadKeeper
from ..engine.scope import RunScope
from ..errors import AgentloopError, NestingTooDeepError
from ..tracing._spans import Tracing

__all__ = ["RUN_STACK", "ControllerRun", "entered_run"]

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
        build_controller: Callable[[RunScope, LoopBridge], Any],
        *,
        limiter: anyio.CapacityLimiter,
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
            on_loop_closed=lambda: self.controller.interrupt(),
        )
        self.controller = build_controller(scope, self.bridge)
        self.span_attributes: dict[str, Any] = {}
        """Extra attributes of the run's span (a resumed run says how much it replayed)."""
        self.on_step: Callable[..., None] | None = None
        """Called with each smolagents step (in the controller thread), e.g. by a stream."""
        _register_step_callback(self.controller, self._step_done)
        self._limiter = limiter
        self._threads = threads
        self._tracing = tracing
        self._agent_name = agent_name
        self._lock = asyncio.Lock()

    async def step(
        self,
        task: str,
        *,
        reset: bool,
        additional_args: Mapping[str, Any] | None,
        max_steps: int | None,
    ) -> Any:
        """Run the controller on `task` in the controller thread; one at a time per run."""
        call = functools.partial(
            self.controller.run,
            task,
            reset=reset,
            additional_args=dict(additional_args) if additional_args else None,
            max_steps=max_steps,
        )
        async with self._lock:
            return await self._tracing.traced_run(  # the run's span: task in, answer out
                self._agent_name,
                self.scope.scope_id,
                task,
                self._in_controller_thread(call),
                self.span_attributes,
            )

    async def _in_controller_thread(self, call: Callable[[], Any]) -> Any:
        """Run `call` in a controller thread holding a controller slot (a nested run of the
        same agent may use its ancestor's); the span current here is current there."""
        lease = Lease()
        limiters = (self._limiter,)
        if not (lease.acquire_nowait(limiters) or self._nested):
            await lease.acquire(limiters)
        try:
            ok, value = await self._threads.run_in_thread(call, on_thread_end=lease.end)
        except asyncio.CancelledError:
            self.stop()
            raise
        if not ok:
            if isinstance(value, Exception):
                raise value
            # SystemExit, KeyboardInterrupt & co. raised by model code or the model belong to
            # this run: re-raised here they would stop the caller's event loop (a server).
            raise AgentloopError(
                f"run `{self.scope.scope_id}` ended: its controller raised {describe(value)}."
            ) from value
        return value

    def _step_done(self, step: Any, **_: Any) -> None:
        on_step = self.on_step
        if on_step is not None:
            on_step(step)

    def stop(self) -> None:
        """Interrupt the controller and fail its in-flight and future tool calls."""
        self.controller.interrupt()
        self.bridge.close()


def _register_step_callback(controller: Any, callback: Callable[..., None]) -> None:
    """Register `callback` for the controller's action steps (smolagents' callback registry)."""
    from smolagents.memory import ActionStep

    controller.step_callbacks.register(ActionStep, callback)
