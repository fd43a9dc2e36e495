"""A minimal MCP server over stdio in plain Python, for the fast tests: it starts in
milliseconds (the SDK's server takes a second or two to import), so crashes and reconnects
can be tested in the default suite. `python tiny_server.py [MARKS_FILE]`.

It answers `initialize`, `ping`, `tools/list` and `tools/call` with three tools: `add(a, b)`,
`hold(seconds)`, which answers after `seconds` unless MCP's cancellation notification for it
comes first (each call in a thread of its own), and `big(size)`, a text of `size` bytes.
With a marks file, it appends `call <tool> <id>` as a call arrives and `cancelled <id>` when
a cancellation does (read it once the server has exited: then it is complete). A call that
asks for progress gets one notification (`arrived`) as it arrives.
"""

from __future__ import annotations

import json
import sys
import threading

TOOLS = [
    {
        "name": "add",
        "description": "Add two integers.",
        "inputSchema": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
    },
    {
        "name": "big",
        "description": "A text of `size` bytes.",
        "inputSchema": {
            "type": "object",
            "properties": {"size": {"type": "integer"}},
            "required": ["size"],
        },
    },
    {
        "name": "hold",
        "description": "Answer after `seconds`.",
        "inputSchema": {
            "type": "object",
            "properties": {"seconds": {"type": "number"}},
            "required": ["seconds"],
        },
    },
]
LOCK = threading.Lock()
CANCELLED: dict[object, threading.Event] = {}


def mark(line: str) -> None:
    if len(sys.argv) > 1:
        with LOCK, open(sys.argv[1], "a") as marks:
            marks.write(line + "\n")


def send(message: dict[str, object]) -> None:
    with LOCK:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()


def call(request_id: object, name: str, arguments: dict[str, float]) -> None:
    if name == "add":
        text = str(int(arguments["a"]) + int(arguments["b"]))
    elif name == "big":
        text = "x" * int(arguments["size"])
    else:
        if CANCELLED[request_id].wait(float(arguments["seconds"])):
            return  # cancelled: no answer, as the protocol says
        text = "held"
    send(
        {
            "jsonrpc": "2.0",
            "id": request_id,
            "result": {"content": [{"type": "text", "text": text}]},
        }
    )


def main() -> None:
    for line in sys.stdin:
        message = json.loads(line)
        method, request_id = message.get("method"), message.get("id")
        if method == "notifications/cancelled":
            cancelled = message["params"]["requestId"]
            mark(f"cancelled {cancelled}")
            CANCELLED.setdefault(cancelled, threading.Event()).set()
            continue
        if request_id is None:
            continue  # another notification
        if method == "initialize":
            version = message["params"]["protocolVersion"]
            result = {
                "protocolVersion": version,
                "capabilities": {"tools": {"listChanged": False}},
                "serverInfo": {"name": "tiny", "version": "1"},
            }
            send({"jsonrpc": "2.0", "id": request_id, "result": result})
        elif method == "tools/list":
            send({"jsonrpc": "2.0", "id": request_id, "result": {"tools": TOOLS}})
        elif method == "tools/call":
            params = message["params"]
            mark(f"call {params['name']} {request_id}")
            token = (params.get("_meta") or {}).get("progressToken")
            if token is not None:  # tells the client the call has arrived
                progress = {"progressToken": token, "progress": 0, "message": "arrived"}
                send({"jsonrpc": "2.0", "method": "notifications/progress", "params": progress})
            CANCELLED.setdefault(request_id, threading.Event())
            args = (request_id, params["name"], params.get("arguments") or {})
            threading.Thread(target=call, args=args, daemon=True).start()
        else:
            send({"jsonrpc": "2.0", "id": request_id, "result": {}})


if __name__ == "__main__":
    main()
