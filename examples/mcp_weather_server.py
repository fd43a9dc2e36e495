"""The MCP server examples/mcp_app.py uses: a stand-in weather service, written with the MCP
SDK (`pip install "agentloop-smol[mcp]"`). Any MCP server works the same way; this one runs
offline. `python examples/mcp_weather_server.py` speaks MCP on its stdin and stdout.
"""

from __future__ import annotations

import anyio
from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("weather")

_FORECASTS = {
    "Paris": (18, "light rain"),
    "Tokyo": (24, "sunny"),
    "Lagos": (31, "humid"),
    "Lima": (20, "cloudy"),
}


@server.tool()
async def forecast(city: str, ctx: Context) -> dict[str, object]:
    """Tomorrow's forecast for one city (slow: it asks three weather models)."""
    for step, model in enumerate(("global", "regional", "local")):
        await ctx.report_progress(step, 3, f"asking the {model} model")
        await anyio.sleep(0.3)  # a real service takes seconds; shortened for the example
    celsius, sky = _FORECASTS[city]
    return {"city": city, "celsius": celsius, "sky": sky}


if __name__ == "__main__":
    server.run("stdio")
