"""The durable benchmark's three systems, each as a pair of runs: the same agent without and
with durability, built once and run many times in one process.

The workload is the same everywhere: a model reply that calls one async tool three times at
once (each call sleeps like I/O), the three results handed back, and a second reply that
answers `"done"`. The model is local and deterministic in each framework, a function of the
conversation so concurrent runs can share it; its latency, when set, sleeps on the loop (for
agentloop, in the controller thread, as a blocking smolagents model does).

- agentloop: `ScriptedModel`; model code submits the three tasks, waits, reads the results;
  durable = `journal=<sqlite path>` at the journal's defaults (WAL, `synchronous=NORMAL`);
  `agentloop-full` also syncs every commit (`synchronous="FULL"`), as the peers' stores do.
- LangGraph: a `StateGraph` of a chat-model node and a `ToolNode` (which gathers a reply's tool
  calls on the loop); durable = compiled with an `AsyncSqliteSaver`, each run its own thread,
  at LangGraph's default durability (`"async"`: a step's checkpoint is written while the next
  step runs); `langgraph-sync` with `durability="sync"`. The chat model is a `BaseChatModel`
  subclass: langchain's own fakes (`GenericFakeChatModel`, `FakeMessagesListChatModel`) replay
  one shared list of replies, which concurrent runs would interleave.
- pydantic-ai: `FunctionModel`; durable = `DBOSAgent` over the same agent, DBOS with a SQLite
  system database, the tool a `@DBOS.step` (pydantic-ai leaves plain tools unrecorded; a step
  records each call's result, as agentloop's journal and LangGraph's checkpoint do).

Each maker is an async context manager yielding `(plain, durable)` coroutine functions; DBOS's
state is process-global, so a process builds one system only (`bench/durable_child.py`).
"""

from __future__ import annotations

import asyncio
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["MAKERS", "REQUIRES", "Pair", "Run", "Workload"]

TOOL_CALLS = 3
PROMPT = "Run the benchmark."


@dataclass(frozen=True, kw_only=True, slots=True)
class Workload:
    """How long each tool call and each model call takes (seconds)."""

    tool_seconds: float
    model_seconds: float


Run = Callable[[], Awaitable[None]]
Pair = tuple[Run, Run]
"""`(plain, durable)`: one run of the agent without, and with, durability."""
Maker = Callable[[Workload, Path], AbstractAsyncContextManager[Pair]]


def _check(answer: object) -> None:
    if answer != "done":
        raise RuntimeError(f"the run answered {answer!r}, expected 'done'")


# -- agentloop -----------------------------------------------------------------------------------

STEP_1 = (
    'ids = [submit_task("tool", "fetch", {{"item": i}}) for i in range({calls})]\n'
    "wait_for_tasks(ids)\n"
    "r = get_task_results(ids)"
)
STEP_2 = 'final_answer("done")'


def agentloop_pair(work: Workload, directory: Path) -> AbstractAsyncContextManager[Pair]:
    """agentloop at the journal's defaults (`synchronous=NORMAL`: a killed process loses
    nothing committed, a power cut may lose the last commits)."""
    return _agentloop(work, directory / "agentloop.sqlite")


def agentloop_full_pair(work: Workload, directory: Path) -> AbstractAsyncContextManager[Pair]:
    """agentloop with `SQLiteJournal(path, synchronous="FULL")`: every commit synced to disk,
    as LangGraph's saver (WAL, SQLite's default `FULL`) and DBOS (rollback journal) do."""
    from agentloop.journal import SQLiteJournal

    return _agentloop(work, SQLiteJournal(directory / "agentloop.sqlite", synchronous="FULL"))


@asynccontextmanager
async def _agentloop(work: Workload, journal: Any) -> AsyncIterator[Pair]:
    from agentloop import create_async_agent
    from agentloop.testing import ScriptedModel

    async def fetch(item: int) -> int:
        """Fetch one item (sleeps like I/O).

        Args:
            item: which item.
        """
        await asyncio.sleep(work.tool_seconds)
        return item

    steps = [STEP_1.format(calls=TOOL_CALLS), STEP_2]

    def make(journal: Any) -> Any:
        model = ScriptedModel(steps, delay=work.model_seconds)
        return create_async_agent(tools=[fetch], model=model, journal=journal)

    plain, durable = make(None), make(journal)

    def runner(agent: Any) -> Run:
        async def run() -> None:
            _check(await agent.arun(PROMPT))

        return run

    async with plain, durable:
        yield runner(plain), runner(durable)


# -- LangGraph -----------------------------------------------------------------------------------


def langgraph_pair(work: Workload, directory: Path) -> AbstractAsyncContextManager[Pair]:
    """LangGraph at its default durability, `"async"`: a step's checkpoint is written while
    the next step runs, and the run waits for the writes before it returns."""
    return _langgraph(work, directory, None)


def langgraph_sync_pair(work: Workload, directory: Path) -> AbstractAsyncContextManager[Pair]:
    """LangGraph with `durability="sync"`: each checkpoint is written before the next step
    starts (write-ahead, as agentloop's journal is for a task's start)."""
    return _langgraph(work, directory, "sync")


@asynccontextmanager
async def _langgraph(
    work: Workload, directory: Path, durability: str | None
) -> AsyncIterator[Pair]:
    from langchain_core.language_models.chat_models import BaseChatModel
    from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
    from langchain_core.outputs import ChatGeneration, ChatResult
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
    from langgraph.graph import START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode, tools_condition

    def reply(messages: list[BaseMessage]) -> ChatResult:
        if isinstance(messages[-1], ToolMessage):
            message = AIMessage(content="done")
        else:
            calls = [
                {"name": "fetch", "args": {"item": i}, "id": f"call_{i}", "type": "tool_call"}
                for i in range(TOOL_CALLS)
            ]
            message = AIMessage(content="", tool_calls=calls)
        return ChatResult(generations=[ChatGeneration(message=message)])

    class ScriptedChat(BaseChatModel):
        """Calls `fetch` three times at once, then answers once the results are back."""

        @property
        def _llm_type(self) -> str:
            return "bench-scripted"

        def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
            return reply(messages)

        async def _agenerate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
            if work.model_seconds:
                await asyncio.sleep(work.model_seconds)
            return reply(messages)

    async def fetch(item: int) -> int:
        """Fetch one item (sleeps like I/O).

        Args:
            item: which item.
        """
        await asyncio.sleep(work.tool_seconds)
        return item

    model = ScriptedChat()

    async def call_model(state: MessagesState) -> dict[str, list[BaseMessage]]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("model", call_model)
    builder.add_node("tools", ToolNode([fetch]))
    builder.add_edge(START, "model")
    builder.add_conditional_edges("model", tools_condition)
    builder.add_edge("tools", "model")

    def runner(graph: Any, threaded: bool) -> Run:
        async def run() -> None:
            config = {"configurable": {"thread_id": uuid.uuid4().hex}} if threaded else None
            options = {"durability": durability} if threaded and durability else {}
            state = await graph.ainvoke({"messages": [HumanMessage(PROMPT)]}, config, **options)
            _check(state["messages"][-1].content)

        return run

    path = directory / "langgraph.sqlite"
    async with AsyncSqliteSaver.from_conn_string(str(path)) as saver:
        await saver.setup()
        yield runner(builder.compile(), False), runner(builder.compile(checkpointer=saver), True)


# -- pydantic-ai on DBOS -------------------------------------------------------------------------


@asynccontextmanager
async def dbos_pair(work: Workload, directory: Path) -> AsyncIterator[Pair]:
    from dbos import DBOS, DBOSConfig
    from pydantic_ai import Agent
    from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
    from pydantic_ai.models.function import AgentInfo, FunctionModel

    with warnings.catch_warnings():  # deprecated in 2.68 for the DBOSDurability capability
        warnings.simplefilter("ignore")
        from pydantic_ai.durable_exec.dbos import DBOSAgent

    async def reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if work.model_seconds:
            await asyncio.sleep(work.model_seconds)
        if len(messages) > 1:
            return ModelResponse(parts=[TextPart("done")])
        calls = [
            ToolCallPart("fetch", {"item": i}, tool_call_id=f"call_{i}") for i in range(TOOL_CALLS)
        ]
        return ModelResponse(parts=calls)

    async def fetch(item: int) -> int:
        """Fetch one item (sleeps like I/O).

        Args:
            item: which item.
        """
        await asyncio.sleep(work.tool_seconds)
        return item

    config: DBOSConfig = {
        "name": "agentloop-bench",
        "system_database_url": f"sqlite:///{directory / 'dbos.sqlite'}",
        "log_level": "WARNING",
    }
    DBOS(config=config)
    plain = Agent(FunctionModel(reply), tools=[fetch], name="bench_plain")
    wrapped = Agent(FunctionModel(reply), tools=[DBOS.step()(fetch)], name="bench")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        durable = DBOSAgent(wrapped)
    DBOS.launch()
    try:

        def runner(agent: Any) -> Run:
            async def run() -> None:
                _check((await agent.run(PROMPT)).output)

            return run

        yield runner(plain), runner(durable)
    finally:
        DBOS.destroy()


MAKERS: dict[str, Maker] = {
    "agentloop": agentloop_pair,
    "agentloop-full": agentloop_full_pair,
    "langgraph": langgraph_pair,
    "langgraph-sync": langgraph_sync_pair,
    "pydantic-ai+dbos": dbos_pair,
}
REQUIRES = {
    "agentloop": ("agentloop",),
    "agentloop-full": ("agentloop",),
    "langgraph": ("langgraph.checkpoint.sqlite", "langchain_core"),
    "langgraph-sync": ("langgraph.checkpoint.sqlite", "langchain_core"),
    "pydantic-ai+dbos": ("pydantic_ai", "dbos"),
}
"""Modules a system needs; a system without them gets a "not installed" row."""
