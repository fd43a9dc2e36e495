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

It also serves an `AsyncAgent` as an MCP server, for Claude Desktop, an IDE or another
framework's agent: `agent_server(agent)` (the SDK's `Server`), `serve_stdio(agent)` and
`streamable_http_app(agent)` (an ASGI app); `agentloop mcp module:agent` runs either.

May import: the vocabulary, `core`, `engine`, `tracing` and `journal` (and `agent` only to
serve an agent over MCP: `_agent_tool`, `_agent_server`, `_serving`, loaded on first use).
Public names: `MCPServer`, `agent_server`, `serve_stdio`, `streamable_http_app`.
"""

from typing import TYPE_CHECKING

from .._util import loaded_on_first_use, report_as
from ._server import MCPServer

if TYPE_CHECKING:
    from ._agent_server import agent_server
    from ._serving import serve_stdio, streamable_http_app

__all__ = ["MCPServer", "agent_server", "serve_stdio", "streamable_http_app"]

report_as(__name__, globals(), __all__)

__getattr__ = loaded_on_first_use(
    globals(),
    {
        "agent_server": "_agent_server",
        "serve_stdio": "_serving",
        "streamable_http_app": "_serving",
    },
)
