"""MCP servers as agentloop targets: their tools run as tasks on agentloop's own event loop.

```python
from agentloop.mcp import MCPServer

agent = create_async_agent(
    model=model,
    mcp_servers=[
        MCPServer.stdio("npx", args=["-y", "@modelcontextprotocol/server-filesystem", "."]),
        MCPServer.http("http://127.0.0.1:8000/mcp", name="search"),
    ],
)
```

Each server's session is opened, used and closed by one owner task on the agent's loop
(`_connection`), through the official `mcp` SDK (`pip install "agentloop-smol[mcp]"`; imported
only when a server is used). docs/mcp.md covers naming, limits, timeouts, faults and tracing.

May import: the vocabulary, `core`, `engine`, `tracing` and `journal` (and `agent`, later, only
to serve an agent over MCP). Public names: `MCPServer`.
"""

from .._util import report_as
from ._server import MCPServer

__all__ = ["MCPServer"]

report_as(__name__, globals(), __all__)
