"""`agentloop demo --web`: the demo scenarios in the live web view, served on 127.0.0.1.

The socket is bound here, before uvicorn starts, so `--port 0` can print the port the system
picked, and a port in use is a one-line error rather than uvicorn's traceback. The banner and
the URL are printed before smolagents is imported; the socket already listens then, so a
browser that connects at once waits in the backlog rather than being refused.
"""

from __future__ import annotations

import socket

from rich.console import Console
from rich.markup import escape

__all__ = ["serve"]

HOST = "127.0.0.1"
EXIT_FAILED = 1
INSTALL_WEB = 'pip install "agentloop-smol[web]" (in a clone of agentloop: pip install -e ".[web]")'
"""What installs the web view's extra (printed when it is missing): from the package index, or
from a clone, where the distribution may be newer than the one published."""


def serve(console: Console, names: list[str] | None, port: int) -> int:
    try:
        import uvicorn
    except ImportError:
        console.print(
            "[red]`agentloop demo --web` needs uvicorn and starlette:[/red] "
            + escape(INSTALL_WEB)  # rich would read `[web]` as markup and drop it
        )
        return EXIT_FAILED
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((HOST, port))
    except OSError as exc:
        listener.close()
        console.print(
            f"[red]cannot listen on {HOST}:{port}[/red] ({exc.strerror}): pass `--port N`, "
            "or `--port 0` for a free port."
        )
        return EXIT_FAILED
    listener.listen(128)
    url = f"http://{HOST}:{listener.getsockname()[1]}/"
    console.print(
        "[bold]agentloop demo --web[/bold] — offline; the controller is a [bold yellow]scripted "
        "planner[/bold yellow] (no LLM).\n"
        f"Open [bold]{url}[/bold] in a browser (Ctrl-C stops the server).",
        soft_wrap=True,
    )
    from ..web.demo import demo_web_app  # smolagents: after the URL

    server = uvicorn.Server(uvicorn.Config(demo_web_app(names), log_level="warning"))
    try:
        with listener:
            server.run(sockets=[listener])
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C once it has shut down gracefully
        pass
    console.print("server stopped")
    return 0
