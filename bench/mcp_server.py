"""The MCP server the MCP benchmark calls, written with the SDK: `python mcp_server.py`.

`add(a, b)` answers at once (per-call overhead); `pause(ms)` answers after `ms` milliseconds
(concurrency: 100 calls of 20 ms take 20 ms in parallel, 2 s in a row).
"""

from __future__ import annotations

import anyio
from mcp.server.mcpserver import MCPServer

server = MCPServer("agentloop-bench")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
async def pause(ms: int) -> str:
    """Answer after `ms` milliseconds."""
    await anyio.sleep(ms / 1000)
    return "ok"


if __name__ == "__main__":
    server.run("stdio")
