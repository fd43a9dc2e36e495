"""The one tool an agent served over MCP offers, and one call of it: a run of the agent, its
progress as MCP progress notifications, and its answer as a `CallToolResult`.

The tool takes one argument, `task` (the text a caller would pass to `arun`), so any MCP
client (Claude Desktop, an IDE, another framework's agent) can call it without knowing
agentloop. A run is `agent.astream(task)`: its events become progress (each model step and
each task that ended counts one; the message says where the run is: ``2 model steps, 3/5
tasks done``), and leaving the stream early (the client cancelled the call, or the task) cancels
the run, as closing any `RunStream` does. Progress only ever grows, as MCP asks.

With an `output_type`, the tool declares its JSON schema as the tool's `outputSchema` and
answers with the validated value as `structuredContent` (a value that is not a JSON object is
wrapped as `{"result": value}`, as the SDK does for a plain return value); the text content is
the same value as JSON. A run that fails answers with `isError` and the failure's text, so the
calling model reads why.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._text import describe, truncate
from ..agent.run_events import RunEvent, RunEventKind

if TYPE_CHECKING:
    from ..agent.async_agent import AsyncAgent

__all__ = ["AgentTool", "RunProgress", "error_result", "run_agent"]

logger = logging.getLogger("agentloop")

Report = Callable[[float, str], Awaitable[None]]
"""Where a call's progress goes: `(progress, message)`."""

MAX_TASK_CHARS = 100_000
"""Longest task text a caller may send (a longer one is refused before any run starts)."""
_ENDED = {
    RunEventKind.TASK_COMPLETED,
    RunEventKind.TASK_FAILED,
    RunEventKind.TASK_CANCELLED,
    RunEventKind.TASK_TIMED_OUT,
}


def error_result(text: str) -> dict[str, Any]:
    """A `CallToolResult` that says the call failed, and why (wire form)."""
    return {"content": [{"type": "text", "text": text}], "isError": True}


@dataclass(frozen=True, kw_only=True)
class AgentTool:
    """How the served agent looks as a tool, and how its answers are shaped."""

    name: str
    description: str
    output_type: Any = None
    output_schema: dict[str, Any] | None = None
    wraps_answer: bool = False
    """Whether the answer goes into `structuredContent` as `{"result": answer}`."""
    max_task_chars: int = MAX_TASK_CHARS

    @classmethod
    def for_agent(
        cls,
        agent: AsyncAgent,
        *,
        name: str | None = None,
        description: str | None = None,
        output_type: Any = None,
    ) -> AgentTool:
        schema, wraps = _output_schema(output_type) if output_type is not None else (None, False)
        return cls(
            name=name or _tool_name(agent.name),
            description=description or agent.description,
            output_type=output_type,
            output_schema=schema,
            wraps_answer=wraps,
        )

    def listing(self, *, tasks: bool) -> dict[str, Any]:
        """The tool as `tools/list` shows it (wire form)."""
        tool: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "inputSchema": {
                "type": "object",
                "properties": {
                    "task": {
                        "type": "string",
                        "description": "What the agent should do: a complete task description.",
                    }
                },
                "required": ["task"],
                "additionalProperties": False,
            },
        }
        if self.output_schema is not None:
            tool["outputSchema"] = self.output_schema
        if tasks:  # a client may ask for a long run as an MCP task
            tool["execution"] = {"taskSupport": "optional"}
        return tool

    def task_of(self, arguments: Mapping[str, Any] | None) -> str | dict[str, Any]:
        """The task text of a call's arguments, or the error result that says what is wrong."""
        arguments = arguments or {}
        unknown = sorted(str(key) for key in arguments if key != "task")
        task = arguments.get("task")
        if unknown:
            why = f"unknown argument(s) {truncate(', '.join(unknown), 200)}"
        elif not isinstance(task, str) or not task.strip():
            why = "`task` is missing or is not a non-empty string"
        elif len(task) > self.max_task_chars:
            why = f"`task` is {len(task)} characters, more than {self.max_task_chars}"
        else:
            return task
        return error_result(f"`{self.name}`: {why}. Expected: {self.name}(task: string).")

    def answer(self, answer: Any) -> dict[str, Any]:
        """The `CallToolResult` of a run's final answer (its JSON-safe form, from the
        `final_answer` event)."""
        text = answer if isinstance(answer, str) else json.dumps(answer, ensure_ascii=False)
        result: dict[str, Any] = {"content": [{"type": "text", "text": text}]}
        if self.output_type is not None:
            result["structuredContent"] = {"result": answer} if self.wraps_answer else answer
        elif isinstance(answer, dict):
            result["structuredContent"] = answer
        return result


@dataclass
class RunProgress:
    """A run's events counted into MCP progress: one per model step and per task that ended."""

    steps: int = 0
    submitted: int = 0
    ended: int = 0
    _seen_tasks: set[str] = field(default_factory=set)

    def update(self, event: RunEvent) -> str | None:
        """The progress message after `event`, or `None` when it does not move the run on."""
        if event.kind is RunEventKind.STEP:
            self.steps += 1
        elif event.kind is RunEventKind.TASK_SUBMITTED:
            self.submitted += 1
            return None  # a submission is not progress: the total grew
        elif event.kind in _ENDED and event.task_event is not None:
            if event.task_event.task_id in self._seen_tasks:
                return None
            self._seen_tasks.add(event.task_event.task_id)
            self.ended += 1
        else:
            return None
        return self.message()

    @property
    def value(self) -> float:
        return float(self.steps + self.ended)

    def message(self) -> str:
        text = f"{self.steps} model step{'' if self.steps == 1 else 's'}"
        if self.submitted:
            text += f", {self.ended}/{self.submitted} tasks done"
        return text


async def run_agent(
    agent: AsyncAgent, tool: AgentTool, task: str, report: Report
) -> dict[str, Any]:
    """Run `agent` on `task`, reporting its progress, and answer its `CallToolResult`.
    Cancelling this cancels the run (and is re-raised)."""
    progress = RunProgress()
    answer: Any = None
    try:
        async with agent.astream(
            task, output_type=tool.output_type, labels={"via": "mcp"}
        ) as stream:
            async for event in stream:
                if event.kind is RunEventKind.FINAL_ANSWER:
                    answer = event.to_dict().get("answer")
                elif (message := progress.update(event)) is not None:
                    await _report(report, progress.value, message)
            await stream.result()  # the run's failure, raised
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        return error_result(f"the run failed: {describe(exc)}")
    return tool.answer(answer)


async def _report(report: Report, value: float, message: str) -> None:
    """Send progress; a client that went away costs the run nothing."""
    try:
        await report(value, message)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        logger.debug("MCP progress not sent: %s", describe(exc))


def _tool_name(agent_name: str | None) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", agent_name or "")[:64]
    return name or "run_agent"


def _output_schema(output_type: Any) -> tuple[dict[str, Any], bool]:
    """The tool's `outputSchema` for `output_type` (an object schema, as MCP requires), and
    whether answers are wrapped as `{"result": ...}` to fit it."""
    from pydantic import TypeAdapter

    schema = TypeAdapter(output_type).json_schema()
    if schema.get("type") == "object":
        return schema, False
    defs = schema.pop("$defs", None)
    wrapped: dict[str, Any] = {
        "type": "object",
        "properties": {"result": schema},
        "required": ["result"],
    }
    if defs:
        wrapped["$defs"] = defs
    return wrapped, True
