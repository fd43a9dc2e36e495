"""How the tests' MCP servers run as scripts: `python SERVER.py stdio`, or `python SERVER.py
http PORT` (Streamable HTTP under uvicorn on 127.0.0.1; `ready` on stdout once it listens,
which is when the tests start calling)."""

from __future__ import annotations

import asyncio
import sys
from typing import Any


def run_server(server: Any, argv: list[str]) -> None:
    """Serve the SDK `server` as `argv` (the script's arguments) says."""
    if argv[0] == "stdio":
        server.run("stdio")
        return
    import uvicorn

    app = server.streamable_http_app()
    config = uvicorn.Config(app, host="127.0.0.1", port=int(argv[1]), log_level="warning")

    class Announcing(uvicorn.Server):
        async def startup(self, sockets: object = None) -> None:
            await super().startup(sockets)  # type: ignore[arg-type]
            sys.stdout.write("ready\n")
            sys.stdout.flush()

    asyncio.run(Announcing(config).serve())
