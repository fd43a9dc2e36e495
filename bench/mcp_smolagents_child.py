"""smolagents' own MCP client (`MCPClient`: mcpadapt's session in a thread with its own event
loop) calling the benchmark's server from a `CodeAgent`'s code: `python mcp_smolagents_child.py
SERVER_PYTHON SERVER_SCRIPT CALLS PAUSE_MS REPEATS`. Prints one JSON line: the makespans (s).

It runs in its own virtualenv: mcpadapt 0.1.19 (what `smolagents[mcp]` installs) imports the
`mcp` 1.x client API (`streamablehttp_client`), which `mcp` 2.x no longer has, and agentloop's
client needs 2.x. The server (written with the 2.x SDK) answers both: the handshake is the same.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from smolagents import CodeAgent, MCPClient
from smolagents.models import ChatMessage, MessageRole, Model
from smolagents.monitoring import TokenUsage

from mcp import StdioServerParameters


class OneStep(Model):  # type: ignore[misc]
    """Replies with `code` (no latency): the run's whole makespan is the tool calls'."""

    def __init__(self, code: str) -> None:
        super().__init__(model_id="bench/one-step")
        self.code = code

    def generate(self, messages: list[Any], **kwargs: Any) -> ChatMessage:
        reply = f"Thought: run the calls.\n<code>\n{self.code}\n</code>"
        return ChatMessage(
            role=MessageRole.ASSISTANT,
            content=reply,
            token_usage=TokenUsage(input_tokens=0, output_tokens=0),
        )


def main() -> None:
    server_python, script, calls, pause_ms, repeats = sys.argv[1:6]
    params = StdioServerParameters(command=server_python, args=[script])
    # model code cannot start threads (no `threading` import): the calls go one after another
    code = f"for _ in range({calls}):\n    pause(ms={pause_ms})\nfinal_answer({calls})"
    makespans = []
    with MCPClient(params, structured_output=False) as tools:
        agent = CodeAgent(tools=tools, model=OneStep(code), max_steps=2, verbosity_level=0)
        agent.run("warm up")
        for _ in range(int(repeats)):
            start = time.perf_counter()
            agent.run("go")
            makespans.append(time.perf_counter() - start)
    print(json.dumps({"makespans": makespans}))


if __name__ == "__main__":
    main()
