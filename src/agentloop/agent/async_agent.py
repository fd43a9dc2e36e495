"""`AsyncAgent` and `create_async_agent`: a CodeAgent that drives its own parallel work."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, Literal, TypeVar, overload

import anyio
import anyio.from_thread
import anyio.to_thread
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from .._util import UNSET, Unset
from ..backends import BackendSpec
from ..core._bridge import LoopBridge
from ..core._budgets import metered
from ..core._effects import ReconcileHook
from ..core._limits_by_model import ModelLimitsSpec, model_limits_by_id
from ..core._threads import ThreadKeeper
from ..core._usage import ModelUsage
from ..core.approvals import (
    DEFAULT_APPROVAL_TIMEOUT,
    ApprovalDecision,
    ApprovalRequest,
    Approver,
    NeedsApproval,
)
from ..engine._run_journal import RunJournal
from ..engine.registry import TaskRegistry
from ..engine.scope import RunScope
from ..errors import (
    InvalidArgumentsError,
    RunLeasedError,
    UnknownRunError,
    WouldBlockLoopError,
)
from ..journal.base import DEFAULT_LEASE_SECONDS, RunSummary, RunWrite
from ..limits import Limits
from ..tracing._model_spans import traced_model
from ._accounting import AgentAccounting, check_cost_budget, models_of
from ._agent_journal import AgentJournal, agent_journal
from ._answer_check import DEFAULT_OUTPUT_RETRIES
from ._controller import ControllerFactory, check_codeagent_kwargs
from ._decisions import read_pending, record_decision
from ._durable import (
    DurableRun,
    JournalSpec,
    ReplayingModel,
    checked_run_id,
    new_run_id,
)
from ._durable_session import DurableSession, checked_session_id
from ._event_record import checked_labels, record_events
from ._fallback import FallbackOn, ModelChain
from ._feed import RunFeed
from ._guidance import render_guidance
from ._parking import Parking, check_park_after, live_request
from ._recovery import RECOVERY_CONCURRENCY, RecoveredRun, Recoverer, Recovering, no_journal
from ._run import (
    DEFAULT_MAX_CONCURRENT_RUNS,
    DEFAULT_MAX_CONTROLLER_THREADS,
    DEFAULT_MAX_MODEL_THREADS,
    RUN_STACK,
    ControllerRun,
    RunLimiters,
)
from ._turn import TurnRequest, Turns
from .run_result import RunResult
from .session import AgentSession, recorded_session
from .stream import RunStream
from .tools import (
    ToolSettings,
    check_direct_call_names,
    direct_call_tools,
    reserved_call_names,
    task_tools,
)

__all__ = ["AsyncAgent", "create_async_agent"]

logger = logging.getLogger("agentloop")
T = TypeVar("T")

DEFAULT_AUTHORIZED_IMPORTS = ("json",)
"""Imports the controller's code may need on top of smolagents' safe defaults."""


class AsyncAgent:
    """A smolagents `CodeAgent` controller whose tools start, await and merge background tasks.

    Configuration lives here; each `arun` builds a fresh controller (fresh memory, fresh
    executor) inside its own run scope, so concurrent runs on one agent are isolated. The agent
    may be created at import time: it binds to the event loop that first uses it.

    An `AsyncAgent` is also a valid managed agent of another one (it has `name`,
    `description` and an async `arun`).
    """

    def __init__(
        self,
        *,
        model: Any,
        tools: Iterable[Any] | Mapping[str, Any] = (),
        managed_agents: Iterable[Any] = (),
        max_workers: int | Unset = UNSET,
        instructions: str | None = None,
        name: str = "async_agent",
        description: str | None = None,
        limits: Limits | None = None,
        tool_settings: ToolSettings | None = None,
        max_concurrent_runs: int = DEFAULT_MAX_CONCURRENT_RUNS,
        max_controller_threads: int = DEFAULT_MAX_CONTROLLER_THREADS,
        max_model_threads: int = DEFAULT_MAX_MODEL_THREADS,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        backend: BackendSpec = "local",
        needs_approval: NeedsApproval = None,
        approver: Approver | None = None,
        approval_timeout: float = DEFAULT_APPROVAL_TIMEOUT,
        journal: JournalSpec = None,
        idempotent: Iterable[str] = (),
        reconcile: Mapping[str, ReconcileHook] | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        journal_types: Iterable[type] = (),
        fallback_on: FallbackOn = None,
        model_limits: ModelLimitsSpec = None,
        mcp_servers: Iterable[Any] = (),
        park_after: float | None = None,
        **codeagent_kwargs: Any,
    ) -> None:
        if model is None:
            raise InvalidArgumentsError(
                "`model` is required: a smolagents model such as LiteLLMModel(...), or "
                "agentloop.testing.ScriptedModel for offline runs."
            )
        if not isinstance(name, str) or not name.isidentifier():
            raise InvalidArgumentsError(f"`name` must be a Python identifier, received {name!r}.")
        check_codeagent_kwargs(codeagent_kwargs)
        chosen = list(model) if isinstance(model, (list, tuple)) else [model]
        limits_by_id = model_limits_by_id(model_limits, chosen[0] if chosen else None)
        self._chain = ModelChain.of(model, fallback_on, limits_by_id)
        """The controller's models: `model`, or the fallback chain `model=[primary, ...]`,
        each with its provider budget (`model_limits`), if any."""
        model = self._chain.primary
        managed_agents = tuple(managed_agents)  # read twice: by the cost check and the registry
        # the price of each reply, and the GenAI metrics of each call
        self._accounting = AgentAccounting(meter_provider)
        self._model_tree = models_of(self._chain.models, managed_agents)
        """Every model this agent's runs call, and whose (a parent agent's cost check reads it)."""
        if limits is not None:
            check_cost_budget(limits, self._model_tree, self._accounting.pricing)
        self.model = model
        """The controller's model (a fallback chain's first)."""
        self.name = name
        self.description = description or (
            "An agent that plans work and runs tool calls and sub-agents in parallel. "
            "Give it a complete task description."
        )
        self.instructions = instructions
        self.tool_settings = tool_settings or ToolSettings()
        self.task_manager = TaskRegistry(
            tools,
            managed_agents,
            max_workers,
            limits=limits,
            tracer_provider=tracer_provider,
            backend=backend,
            needs_approval=needs_approval,
            approver=approver,
            approval_timeout=approval_timeout,
            mcp_servers=mcp_servers,
            reserved_names=reserved_call_names(),
        )
        # `chat {model}` spans (covering the provider budgets' waits and retries, and priced
        # as the model that replied), and each call charged to the run's budget
        self._model = metered(
            traced_model(model, self.task_manager.tracing, self._accounting.replying_price(model))
        )
        self._controllers = ControllerFactory(codeagent_kwargs, DEFAULT_AUTHORIZED_IMPORTS)
        self._park_after = check_park_after(park_after, journaled=journal is not None)
        """Seconds a journaled run may wait only for approvals before it parks (`None`: never)."""
        self._durability = agent_journal(
            journal,
            idempotent=idempotent,
            reconcile=reconcile,
            lease_seconds=lease_seconds,
            journal_types=journal_types,
            known=[*self.task_manager.tool_names, *self.task_manager.agent_names],
        )
        opened = self._durability.journal if self._durability is not None else None
        self.journal = opened
        """Where runs are recorded so that a crashed run resumes (`None`: not recorded)."""
        self.idempotent = self._durability.idempotent if self._durability else frozenset()
        self._checked_names: tuple[str, ...] = ()
        check_direct_call_names(self.task_manager.tool_names + self.task_manager.agent_names)
        self._limiters = RunLimiters.of(
            max_concurrent_runs, max_controller_threads, max_model_threads
        )
        self._controller_threads = ThreadKeeper(name="agentloop-controller")
        self._session_ids = itertools.count(1)
        self._portals = anyio.from_thread.BlockingPortalProvider()
        """The blocking faces' event loop: started by the first `run()` in progress, shared
        by concurrent ones (from any thread), stopped when the last one returns."""
        self._turns = Turns(
            agent_key=id(self),
            agent_name=name,
            limits=self.task_manager.limits,
            usage=self.task_manager.model_usage,
            model=model,
            model_limits=limits_by_id,
            accounting=self._accounting,
        )
        self._runs: set[ControllerRun] = set()
        """Runs and sessions in progress, so that shutting down can stop their controllers."""

    # -- the prompt ---------------------------------------------------------------------------

    def guidance(self) -> str:
        """The system-prompt section the controller gets (the caller's instructions last)."""
        return render_guidance(
            self.task_manager.targets(),
            self.task_manager.limits,
            self.tool_settings,
            self.instructions,
        )

    def _controller_maker(
        self, scope: RunScope, bridge: LoopBridge, model: Any
    ) -> Callable[[], Any]:
        """What builds a run's controller: the targets are read here, on the loop; the
        returned call renders the guidance and builds the tools and the `CodeAgent` from
        them, in the run's first controller thread (most of a run's start, kept off the
        loop: 10,000 runs started at once would otherwise stall it for seconds)."""
        targets = self.task_manager.targets()
        names = tuple(t.name for t in targets)
        if names != self._checked_names:  # targets may be registered after construction
            check_direct_call_names(list(names))
            self._checked_names = names
        settings, limits, instructions = (
            self.tool_settings,
            self.task_manager.limits,
            self.instructions,
        )

        def build() -> Any:
            guidance = render_guidance(targets, limits, settings, instructions)
            tools = [
                *task_tools(scope, bridge, settings),
                *direct_call_tools(scope, bridge, settings, targets),
            ]
            return self._controllers.build(tools, guidance, model=model)

        return build

    # -- async API ----------------------------------------------------------------------------

    @overload
    async def arun(
        self,
        task: str,
        *,
        output_type: type[T],
        output_retries: int = ...,
        images: Sequence[Any] | None = ...,
        additional_args: Mapping[str, Any] | None = ...,
        max_steps: int | None = ...,
        guidance: bool = ...,
        run_id: str | None = ...,
        force: bool = ...,
        return_full_result: Literal[False] = ...,
    ) -> T: ...

    @overload
    async def arun(
        self,
        task: str,
        *,
        output_type: Any = ...,
        output_retries: int = ...,
        images: Sequence[Any] | None = ...,
        additional_args: Mapping[str, Any] | None = ...,
        max_steps: int | None = ...,
        guidance: bool = ...,
        run_id: str | None = ...,
        force: bool = ...,
        return_full_result: bool = ...,
    ) -> Any: ...

    async def arun(
        self,
        task: str,
        *,
        output_type: Any = None,
        output_retries: int = DEFAULT_OUTPUT_RETRIES,
        images: Sequence[Any] | None = None,
        additional_args: Mapping[str, Any] | None = None,
        max_steps: int | None = None,
        guidance: bool = False,
        run_id: str | None = None,
        force: bool = False,
        return_full_result: bool = False,
    ) -> Any:
        """Run the controller on `task` and return its final answer.

        The run gets its own scope: when this returns, raises or is cancelled, its unfinished
        tasks are cancelled and settled. Cancelling it interrupts the controller.

        Args:
            output_type: the type of the answer (a pydantic model, dataclass, TypedDict or a
                type such as `list[int]`): the model is shown its JSON schema, an answer that
                does not validate is handed back to it with what is wrong, and the validated
                value is returned (docs/models.md, "Typed answers").
            output_retries: answers of a typed run handed back for correction; the next bad
                one fails the run with `AnswerValidationError` (holding the last value).
            images: pictures for the model with the task: PIL images, bytes, paths or
                `data:` URLs (docs/models.md, "Images"); a model that cannot take images
                is refused before any call.
            run_id: the run's id (generated when omitted). With a journal, the id of a run
                that did not finish resumes it, and that of a completed run returns its
                recorded answer (see `docs/durability.md`); with another task, agent,
                output type or images it is refused (`JournalMismatchError`).
            force: resume `run_id` even though its task or the agent's configuration changed
                (a completed run returns its recorded answer and runs nothing).
            return_full_result: return a `RunResult` (the answer, the run id, what was
                replayed) instead of the bare answer.
        """
        request = TurnRequest(
            task=task,
            additional_args=additional_args,
            max_steps=max_steps,
            guidance=guidance,
            run_id=run_id,
            force=force,
            answer=self._turns.answer_check(output_type, output_retries),
        )
        with self._turns.entered():
            request = await self._turns.with_images(request, images)
            result = await self._arun_request(request, None)
        return result if return_full_result else result.output

    @overload
    def astream(
        self,
        task: str,
        *,
        output_type: type[T],
        output_retries: int = ...,
        images: Sequence[Any] | None = ...,
        additional_args: Mapping[str, Any] | None = ...,
        max_steps: int | None = ...,
        guidance: bool = ...,
        max_buffered: int = ...,
        run_id: str | None = ...,
        force: bool = ...,
        labels: Mapping[str, str] | None = ...,
    ) -> RunStream[T]: ...

    @overload
    def astream(
        self,
        task: str,
        *,
        output_type: Any = ...,
        output_retries: int = ...,
        images: Sequence[Any] | None = ...,
        additional_args: Mapping[str, Any] | None = ...,
        max_steps: int | None = ...,
        guidance: bool = ...,
        max_buffered: int = ...,
        run_id: str | None = ...,
        force: bool = ...,
        labels: Mapping[str, str] | None = ...,
    ) -> RunStream[Any]: ...

    def astream(
        self,
        task: str,
        *,
        output_type: Any = None,
        output_retries: int = DEFAULT_OUTPUT_RETRIES,
        images: Sequence[Any] | None = None,
        additional_args: Mapping[str, Any] | None = None,
        max_steps: int | None = None,
        guidance: bool = False,
        max_buffered: int = 10_000,
        run_id: str | None = None,
        force: bool = False,
        labels: Mapping[str, str] | None = None,
    ) -> RunStream[Any]:
        """`arun` as a `RunStream` of the run's events; the run starts when the stream is
        entered or first iterated, and closing the stream cancels it (see docs/streaming.md).
        `labels` (short strings: who started the run, from where) go on its `run_started`
        event, and into the journal with it; the run service lists runs by them.

        ```python
        async with agent.astream("...") as stream:
            async for event in stream:
                print(event.to_dict())
        answer = await stream.result()
        ```
        """
        self._turns.check_open()
        check = self._turns.answer_check(output_type, output_retries)
        request = TurnRequest(
            task=task,
            additional_args=additional_args,
            max_steps=max_steps,
            guidance=guidance,
            run_id=run_id,
            force=force,
            answer=check,
        )

        async def start(feed: RunFeed) -> Any:
            with self._turns.entered():
                turn = await self._turns.with_images(request, images)
                return (await self._arun_request(turn, feed)).output

        return RunStream(
            start,
            max_buffered=max_buffered,
            answer_data=check.stored if check is not None else None,
            labels=checked_labels(labels),
        )

    async def _arun_request(self, request: TurnRequest, feed: RunFeed | None) -> RunResult:
        run_id = None if request.run_id is None else checked_run_id(request.run_id)
        await self.task_manager.refresh_targets()  # MCP servers: opened, or listed again
        if self.journal is None:
            async with self.task_manager.scope(run_id) as scope:
                return await self._arun_in_scope(scope, request, feed, None)
        return await self._arun_durable(run_id or new_run_id(), request, feed)

    async def _arun_durable(
        self, run_id: str, request: TurnRequest, feed: RunFeed | None, held_by: str | None = None
    ) -> RunResult:
        """A journaled run: claim it, replay what was recorded, record the rest (`held_by`:
        recovery resumes it; who held it before)."""
        assert self._durability is not None
        durable = self._durability.run(
            run_id,
            request.task,
            fresh=request.run_id is None,
            force=request.force,
            model=self.model,
            targets=self.task_manager.targets(),
            instructions=self.instructions,
            call=request.identity,
        )
        durable.recovered_from = held_by
        durable.answer_check = request.answer
        if self.task_manager.scope_is_open(run_id):
            raise RunLeasedError(
                f"run `{run_id}` is already running in this process; exactly one caller runs "
                "a run at a time."
            )
        return await durable.execute(
            self.task_manager.scope(run_id),
            feed,
            lambda scope: self._arun_in_scope(scope, request, feed, durable),
        )

    async def _arun_in_scope(
        self,
        scope: RunScope,
        request: TurnRequest,
        feed: RunFeed | None,
        durable: DurableRun | None,
    ) -> RunResult:
        """The run in `scope`: its answer and what it spent (a durable run adds what replayed)."""
        journal = durable.run_journal if durable is not None else None
        run = self._new_run(scope, journal)
        resumed = None
        if durable is not None:
            durable.on_failure = run.stop
            if self._park_after is not None and len(RUN_STACK.get()) == 1:  # not a nested run
                durable.parking = Parking(run, feed)
                scope.park_when_idle(self._park_after, durable.parking.idle)
            if journal is not None and journal.replay is not None:  # spans say what replays
                run.span_attributes = {
                    "agentloop.run.resumed": True,
                    "agentloop.run.replayed_steps": journal.replay.model_replies,
                    "agentloop.run.replayed_tasks": len(journal.replay.outcomes),
                }
                resumed = (durable.previous, journal.replay)
            run.span_attributes |= durable.recovery_attributes()
            if feed is not None and journal is not None:  # a service reads them back
                durable.events = record_events(feed, journal, run)
        try:
            answer = await self._turns.take(run, request, reset=True, feed=feed, resumed=resumed)
            budget = run.budget
            usage, by_agent = budget.report() if budget is not None else (ModelUsage(), {})
            return RunResult(
                output=answer, run_id=scope.scope_id, usage=usage, sub_agent_usage=by_agent
            )
        finally:
            self._end_run(run)

    async def arun_with_async_guidance(
        self,
        task: str,
        *,
        additional_args: Mapping[str, Any] | None = None,
        max_steps: int | None = None,
    ) -> Any:
        """`arun` with a short hint appended to the task that asks for a parallel plan."""
        return await self.arun(
            task, additional_args=additional_args, max_steps=max_steps, guidance=True
        )

    @contextlib.asynccontextmanager
    async def session(
        self, session_id: str | None = None, *, force: bool = False
    ) -> AsyncIterator[AgentSession]:
        """A conversation: its `arun` calls share memory, variables and tasks until it closes.

        Args:
            session_id: with a journal, the session is recorded under this id and survives
                restarts: opening it again (in this process or another) replays its turns
                and goes on; one process holds it at a time (docs/durability.md#sessions).
            force: reopen `session_id` even though the agent's configuration changed.
        """
        self._turns.check_open()
        await self.task_manager.refresh_targets()
        if session_id is not None:
            durability = self._durability
            checked = checked_session_id(session_id, self.name, journaled=durability is not None)
            assert durability is not None
            fingerprint = durability.fingerprint(
                self.model, self.task_manager.targets(), self.instructions
            )
            record = DurableSession(durability, checked, fingerprint=fingerprint, force=force)
            async with recorded_session(
                record, self.task_manager, self._new_run, self._end_run, self._turns
            ) as durable:
                yield durable
            return
        async with self.task_manager.scope(f"session_{next(self._session_ids)}") as scope:
            run = self._new_run(scope)
            try:
                yield AgentSession(run, self._turns)
            finally:
                self._end_run(run)

    def _end_run(self, run: ControllerRun) -> None:
        run.stop()
        run.release()
        self._runs.discard(run)

    def _new_run(self, scope: RunScope, journal: RunJournal | None = None) -> ControllerRun:
        """A run's controller; with a journal its model replays, then records, the replies."""
        model = (
            ReplayingModel(self._model, journal, self._chain.by_id)
            if journal is not None
            else self._model
        )
        run = ControllerRun(
            scope,
            self._controller_maker,
            model=model,
            chain=self._chain,
            limiters=self._limiters,
            threads=self._controller_threads,
            tracing=self.task_manager.tracing,
            agent_name=self.name,
            nested=RUN_STACK.get().count(id(self)) > 1,
        )
        self._runs.add(run)
        return run

    def _stop_runs(self) -> None:
        """Refuse new runs and stop the controllers of those in progress (from any thread).

        Cancelling the runs' tasks alone is not enough: a controller would go on calling the
        model (every tool call failing) until `max_steps`, long after the shutdown."""
        self._turns.closed = True
        if self._durability is not None:  # runs in flight hand their runs back
            self._durability.shutting_down.set()
        for run in list(self._runs):
            run.stop()

    async def aclose(self) -> None:
        """Stop every run, cancel and settle its tasks, then wait a bounded grace for threads.

        The close runs in a task of its own, shielded from the caller: called from one of the
        agent's own async tools (a shutdown endpoint run as a tool), the caller is one of the
        tasks being cancelled. It then ends at once, as the others do, instead of waiting for
        itself through the whole `cancel_grace`, and the close still goes to its end."""
        closing = asyncio.ensure_future(self._aclose(None))
        closing.add_done_callback(_log_unseen_failure)
        await asyncio.shield(closing)

    async def _aclose(self, ignore_thread: int | None) -> None:
        """`aclose`, not waiting for thread `ignore_thread` (the one that asked for it)."""
        self._stop_runs()
        await self.task_manager.aclose(spare_thread=ignore_thread)
        if self._durability is not None:  # what the stopped runs recorded is written first
            await self._durability.aclose()
        grace = self.task_manager.limits.thread_grace
        await self._controller_threads.settle(grace, ignore_thread)
        self._controller_threads.close()

    async def __aenter__(self) -> AsyncAgent:
        await self.task_manager.refresh_targets()  # MCP servers' sessions open here
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- blocking faces for plain scripts ------------------------------------------------------

    @overload
    def run(
        self,
        task: str,
        *,
        output_type: type[T],
        output_retries: int = ...,
        images: Sequence[Any] | None = ...,
        additional_args: Mapping[str, Any] | None = ...,
        max_steps: int | None = ...,
        guidance: bool = ...,
        run_id: str | None = ...,
        force: bool = ...,
        return_full_result: Literal[False] = ...,
    ) -> T: ...

    @overload
    def run(
        self,
        task: str,
        *,
        output_type: Any = ...,
        output_retries: int = ...,
        images: Sequence[Any] | None = ...,
        additional_args: Mapping[str, Any] | None = ...,
        max_steps: int | None = ...,
        guidance: bool = ...,
        run_id: str | None = ...,
        force: bool = ...,
        return_full_result: bool = ...,
    ) -> Any: ...

    def run(
        self,
        task: str,
        *,
        output_type: Any = None,
        output_retries: int = DEFAULT_OUTPUT_RETRIES,
        images: Sequence[Any] | None = None,
        additional_args: Mapping[str, Any] | None = None,
        max_steps: int | None = None,
        guidance: bool = False,
        run_id: str | None = None,
        force: bool = False,
        return_full_result: bool = False,
    ) -> Any:
        """Blocking `arun` for plain scripts and threads; concurrent calls from several
        threads run concurrently, on one event loop this agent starts for them."""
        _refuse_inside_event_loop("AsyncAgent.run()", "await agent.arun(...)")
        self._refuse_inside_own_run("run")
        with self._portals as portal:
            return portal.call(
                functools.partial(
                    self.arun,
                    task,
                    output_type=output_type,
                    output_retries=output_retries,
                    images=images,
                    additional_args=additional_args,
                    max_steps=max_steps,
                    guidance=guidance,
                    run_id=run_id,
                    force=force,
                    return_full_result=return_full_result,
                )
            )

    # -- the journal ---------------------------------------------------------------------------

    async def runs(self, limit: int = 100) -> list[RunSummary]:
        """The journal's runs, most recently updated first (read in a worker thread). Each
        summary's `answer` is built with the agent's `journal_types`."""
        if self._durability is None:
            raise InvalidArgumentsError(no_journal(self.name))
        return await self._durability.runs(limit)

    def listen_journal(self, listener: Callable[[RunWrite], None]) -> Callable[[], None]:
        """Call `listener` on the running loop with each run write the agent's journal
        commits from this loop (a run service shows clients committed events only); returns
        the call that stops it. `InvalidArgumentsError` without a journal."""
        if self._durability is None:
            raise InvalidArgumentsError(no_journal(self.name))
        return self._durability.writer().listen(listener)

    async def pending_approvals(self, run_id: str) -> list[ApprovalRequest]:
        """The decisions run `run_id` waits for: a parked run's, from the journal (in any
        process), or those its tasks await now if it runs in this process. Arguments are
        bounded JSON values (docs/approval.md, "Parked runs")."""
        durability = self._checked_journal()
        live = self._live_scope(run_id)
        if live is not None:
            return [live_request(request) for request in live.approval_requests()]
        return await anyio.to_thread.run_sync(read_pending, durability.journal, run_id)

    async def decide(self, run_id: str, task_id: str, decision: ApprovalDecision) -> None:
        """Decide task `task_id` of run `run_id`, once: a parked run's decision is recorded in
        the journal and leaves the run resumable (`resume`); a run running in this process is
        decided as `stream.approve` / `stream.reject` would. Raises `UnknownRunError`, or an
        `AgentloopError` saying the run waits on no such task or it was already decided."""
        durability = self._checked_journal()
        live = self._live_scope(run_id)
        if live is not None:
            live.answer_approval(task_id, decision)
            return
        await self.task_manager.refresh_targets()
        fingerprint = durability.fingerprint(
            self.model, self.task_manager.targets(), self.instructions
        )
        await anyio.to_thread.run_sync(
            functools.partial(
                record_decision,
                durability.journal,
                run_id,
                task_id,
                decision,
                fingerprint=fingerprint,
                lease_seconds=durability.lease_seconds,
            )
        )

    async def resume(self, run_id: str, **kwargs: Any) -> Any:
        """`arun` of the journal's run `run_id` with its recorded task (after a decision on a
        parked run); `kwargs` are `arun`'s (a typed run needs its `output_type` again)."""
        durability = self._checked_journal()
        summary = await anyio.to_thread.run_sync(durability.journal.run, run_id)
        if summary is None:
            raise UnknownRunError(f"the journal has no run `{run_id}`.")
        return await self.arun(summary.task, run_id=run_id, **kwargs)

    def _checked_journal(self) -> AgentJournal:
        if self._durability is None:
            raise InvalidArgumentsError(no_journal(self.name))
        return self._durability

    def _live_scope(self, run_id: str) -> RunScope | None:
        """The scope of run `run_id` if it runs in this process now."""
        for run in self._runs:
            if run.scope.scope_id == run_id and not run.scope.closed:
                return run.scope
        return None

    async def recover(
        self, *, limit: int = 100, max_concurrent: int = RECOVERY_CONCURRENCY
    ) -> list[RecoveredRun]:
        """Resume the journal's runs of this agent that nobody runs any more (their process
        died, their lease expired, or they were handed back); say how each ended
        (docs/durability.md, "Recovery")."""
        return await self._recoverer(limit, max_concurrent).recover()

    def recovering(
        self,
        *,
        interval: float | None = None,
        limit: int = 100,
        max_concurrent: int = RECOVERY_CONCURRENCY,
    ) -> AbstractAsyncContextManager[Recovering]:
        """`recover()` at entry, then every `interval` seconds (default: `lease_seconds`),
        until the block ends; leaving it cancels the runs it resumed and hands them back."""
        return self._recoverer(limit, max_concurrent).recovering(interval)

    def _recoverer(self, limit: int, max_concurrent: int) -> Recoverer:
        self._turns.check_open()
        if self._durability is None:
            raise InvalidArgumentsError(no_journal(self.name))
        durability = self._durability
        targets = self.task_manager.targets
        return Recoverer(
            durability,
            fingerprint=lambda: durability.fingerprint(self.model, targets(), self.instructions),
            resume=self._resume_recovered,
            agent_name=self.name,
            limit=limit,
            max_concurrent=max_concurrent,
        )

    async def _resume_recovered(self, summary: RunSummary, holder: str) -> RunResult:
        request = TurnRequest(task=summary.task, run_id=summary.run_id)
        await self.task_manager.refresh_targets()
        with self._turns.entered():
            return await self._arun_durable(summary.run_id, request, None, holder)

    def run_with_async_guidance(
        self,
        task: str,
        *,
        additional_args: Mapping[str, Any] | None = None,
        max_steps: int | None = None,
    ) -> Any:
        """Blocking `arun_with_async_guidance`, as in `async_task_system` (docs/migrating.md)."""
        return self.run(task, additional_args=additional_args, max_steps=max_steps, guidance=True)

    def shutdown(self) -> None:
        """Blocking `aclose` for plain scripts (from async code, `await agent.aclose()`).

        Safe from any thread, including a worker thread of this agent's own tools: it never
        waits for the thread it runs in."""
        _refuse_inside_event_loop("AsyncAgent.shutdown()", "await agent.aclose()")
        # Stop the runs from this thread first: `run()` calls blocked in other threads then
        # return promptly instead of this waiting for them to finish.
        self._stop_runs()
        me = threading.get_ident()
        loop = self.task_manager.loop
        if loop is not None and loop.is_running():  # in use: close it where it runs
            grace = self.task_manager.limits.thread_grace
            LoopBridge(loop, name="shutdown").call(
                lambda: self._aclose(me), timeout=2 * grace + 30, what="shutdown"
            )
            return
        with self._portals as portal:
            portal.call(self._aclose, me)

    def _refuse_inside_own_run(self, what: str) -> None:
        if id(self) in RUN_STACK.get():
            raise WouldBlockLoopError(
                f"`{self.name}.{what}()` was called from inside a run of `{self.name}` (a tool "
                "or sub-agent of its own): it would wait for the run that is waiting for it. "
                f"Use `await {self.name}.arun(...)` from an async tool, or submit the agent as "
                "a managed_agent task."
            )

    def __enter__(self) -> AsyncAgent:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

    def __call__(self, task: str, **kwargs: Any) -> Any:
        """smolagents' managed-agent protocol: a blocking run that returns the answer."""
        return self.run(task, **kwargs)

    def __repr__(self) -> str:
        return (
            f"AsyncAgent(name={self.name!r}, tools={self.task_manager.tool_names}, "
            f"managed_agents={self.task_manager.agent_names})"
        )


def create_async_agent(
    tools: Iterable[Any] | Mapping[str, Any] = (),
    managed_agents: Iterable[Any] = (),
    model: Any = None,
    max_workers: int | Unset = UNSET,
    instructions: str | None = None,
    **codeagent_kwargs: Any,
) -> AsyncAgent:
    """Create an `AsyncAgent` (`async_task_system`'s entry point, with the same parameters:
    docs/migrating.md).

    Args:
        tools: tools the controller can submit as tasks (smolagents `Tool`s or callables).
        managed_agents: agents the controller can submit as `managed_agent` tasks.
        model: the controller's smolagents model.
        max_workers: sync tool calls running at once (default 3, or `limits.max_workers`
            when `limits=` is given; an explicit `max_workers` wins over both).
        instructions: extra system-prompt instructions, appended to agentloop's guidance.
        **codeagent_kwargs: passed to each run's `CodeAgent` (e.g. `max_steps`,
            `additional_authorized_imports`, `step_callbacks`), or agentloop options
            (`name`, `description`, `limits`, `tool_settings`, `max_concurrent_runs` (runs
            at once; more wait in FIFO order, holding no thread), `max_controller_threads`
            (threads running the runs' code), `max_model_threads` (threads waiting on a
            sync-only model's blocking calls),
            `journal` (a path, a postgresql:// URL or a `Journal`: runs are recorded and a
            crashed run resumes, see docs/durability.md), `idempotent` (targets safe to run
            again after a crash), `reconcile` (per target, a hook that finds out whether a
            task a crash interrupted took effect), `journal_types` (the dataclasses, pydantic
            models and enums of yours that results and answers may be: a journal stores only
            plain data and registered types), `model_limits` (an `agentloop.ModelLimits`:
            the model's provider budget, concurrent calls, requests and tokens per minute,
            and its retries; one object shared by several agents is one budget; or a
            mapping from model id to ModelLimits, see docs/models.md), `mcp_servers`
            (`agentloop.mcp.MCPServer`s whose tools become targets: see docs/mcp.md),
            `needs_approval`, `approver`, `park_after` (seconds a journaled run may wait
            only for approvals before it parks, holding nothing: docs/approval.md), ...).
    """
    return AsyncAgent(
        tools=tools,
        managed_agents=managed_agents,
        model=model,
        max_workers=max_workers,
        instructions=instructions,
        **codeagent_kwargs,
    )


def _log_unseen_failure(closing: asyncio.Future[None]) -> None:
    """A close whose caller was cancelled (it ran in the agent's own tool) has nobody to
    raise to: its failure is logged, not lost."""
    if not closing.cancelled() and closing.exception() is not None:
        logger.error("closing the agent failed", exc_info=closing.exception())


def _refuse_inside_event_loop(what: str, instead: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise WouldBlockLoopError(
        f"`{what}` blocks, but it was called inside a running event loop, where it would "
        f"deadlock; use `{instead}` instead."
    )
