"""An OpenAI-compatible chat-completions server on 127.0.0.1 that serves scripted replies.

The CLI tests run `agentloop run` in a subprocess against this stub, so the real litellm →
HTTP path is exercised (headers, JSON shapes, status codes, retries) without any network or
API key. The stub is a stdlib `ThreadingHTTPServer` on a free port, served by one thread the
test owns; `with LLMStub(...) as stub:` bounds its lifetime to the test.

Scripting: `replies` are assistant message contents, served in order. `fail_first(n, status)`
answers the next `n` requests with an OpenAI-style JSON error instead (e.g. 429 or 500), before
any reply is consumed. Every request is recorded (path, headers, JSON body), including the
failed ones, so tests can assert what the client sent and how often it retried.

`hold()` makes the stub keep the next requests unanswered until `release()` (or the end of
the `with` block): `stub.arrived` is set when one is waiting, so a test can act while the
client is surely mid-call (the Ctrl-C test), synchronised on an event rather than on time.
An asyncio test hears the same from the handler threads through two hooks, `on_hold` (called
with the number of requests held now, as each arrives) and `on_disconnect` (a client closed a
held request's connection: it gave up on the call).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from .._net import served

__all__ = ["LLMStub", "RecordedRequest"]

_PATHS = ("/v1/chat/completions", "/chat/completions")
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    429: "rate_limit_exceeded",
    500: "server_error",
    503: "server_error",
}


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the stub received, with the status it answered."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    status: int

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))

    def text(self, role: str) -> str:
        """All text of the messages with `role`, joined (content may be a str or parts)."""
        chunks = []
        for message in self.messages:
            if message.get("role") != role:
                continue
            content = message.get("content")
            if isinstance(content, str):
                chunks.append(content)
            elif isinstance(content, list):
                chunks.extend(str(part.get("text", "")) for part in content)
        return "\n".join(chunks)


@dataclass
class _Script:
    replies: deque[str]
    failures: deque[int] = field(default_factory=deque)
    requests: list[RecordedRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    held: int = 0
    wakers: set[int] = field(default_factory=set)
    """Write ends of the pipes held handlers watch; `release()` writes to each."""


class LLMStub:
    """A scripted OpenAI-compatible server. Use as a context manager.

    Args:
        replies: assistant message contents, one per successful request, in order.
        delay: seconds to wait before answering each request (simulated latency).
        retry_after_ms: sent as `retry-after-ms` on 429/5xx answers, so a client that honours
            it (the openai SDK does) retries promptly instead of backing off for seconds.
    """

    def __init__(
        self, replies: Iterable[str] = (), *, delay: float = 0.0, retry_after_ms: int | None = 20
    ) -> None:
        self._script = _Script(replies=deque(replies))
        self.delay = delay
        self.retry_after_ms = retry_after_ms
        self._server: ThreadingHTTPServer | None = None
        self._serving = contextlib.ExitStack()
        self.arrived = threading.Event()
        """Set when a request is being held (see `hold`)."""
        self._released = threading.Event()
        self._released.set()
        self.on_hold: Callable[[int], None] | None = None
        """Called in the handler thread with the number of requests held, as each arrives."""
        self.on_disconnect: Callable[[], None] | None = None
        """Called in the handler thread when a client closes a held request's connection."""

    # -- scripting ------------------------------------------------------------------------------

    def add_replies(self, *replies: str) -> None:
        with self._script.lock:
            self._script.replies.extend(replies)

    def fail_first(self, count: int, status: int) -> None:
        """Answer the next `count` requests with HTTP `status` and an OpenAI-style error."""
        with self._script.lock:
            self._script.failures.extend([status] * count)

    def hold(self) -> None:
        """Keep requests unanswered from now until `release()`; `arrived` tells one came."""
        self.arrived.clear()
        self._released.clear()

    def release(self) -> None:
        self._released.set()
        with self._script.lock:
            for waker in self._script.wakers:
                os.write(waker, b"x")

    def _wait_if_held(self, connection: socket.socket) -> None:
        if self._released.is_set():
            return
        with self._script.lock:
            self._script.held += 1
            held = self._script.held
        self.arrived.set()
        try:
            if self.on_hold is not None:
                self.on_hold(held)
            if self._client_left(connection) and self.on_disconnect is not None:
                self.on_disconnect()
            self._released.wait()
        finally:
            with self._script.lock:
                self._script.held -= 1

    def _client_left(self, connection: socket.socket) -> bool:
        """Wait for `release()` or the client closing `connection`; True if the client left."""
        wake, waker = os.pipe()
        try:
            with self._script.lock:
                self._script.wakers.add(waker)
            if self._released.is_set():  # released before `release()` could see our pipe
                return False
            readable, _, _ = select.select([connection, wake], [], [])
            if connection not in readable:
                return False
            try:
                return connection.recv(1, socket.MSG_PEEK) == b""
            except OSError:
                return True
        finally:
            with self._script.lock:
                self._script.wakers.discard(waker)
            os.close(wake)
            os.close(waker)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._script.lock:
            return list(self._script.requests)

    def _next(self) -> tuple[int, str | None]:
        with self._script.lock:
            if self._script.failures:
                return self._script.failures.popleft(), None
            if self._script.replies:
                return HTTPStatus.OK, self._script.replies.popleft()
            return HTTPStatus.BAD_REQUEST, None

    def _record(self, request: RecordedRequest) -> None:
        with self._script.lock:
            self._script.requests.append(request)

    # -- lifetime -------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the stub is not running; use `with LLMStub(...) as stub:`")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """What a client takes as its API base (OpenAI style, with `/v1`)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> LLMStub:
        handler = type("_BoundHandler", (_Handler,), {"stub": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._serving.enter_context(served(self._server, "llm-stub"))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()  # a held handler thread must end before the server stops
        self._serving.close()
        self._server = None


def completion_body(content: str, model: str, prompt_tokens: int) -> dict[str, Any]:
    """A non-streaming chat completion in OpenAI's JSON shape."""
    completion_tokens = max(1, len(content.split()))
    return {
        "id": f"chatcmpl-stub-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_stub",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def error_body(status: int, message: str) -> dict[str, Any]:
    """An error in OpenAI's JSON shape."""
    return {
        "error": {
            "message": message,
            "type": _ERROR_TYPES.get(status, "api_error"),
            "param": None,
            "code": _ERROR_TYPES.get(status),
        }
    }


class _Handler(BaseHTTPRequestHandler):
    stub: LLMStub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request stderr line; requests are recorded instead."""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            body = {"_raw": raw.decode("utf-8", "replace")}
        if path not in _PATHS:
            self._record(path, body, HTTPStatus.NOT_FOUND)
            self._send(HTTPStatus.NOT_FOUND, error_body(404, f"stub: no route {path}"))
            return
        self.stub._wait_if_held(self.connection)
        if self.stub.delay:
            time.sleep(self.stub.delay)
        status, content = self.stub._next()
        self._record(path, body, status)
        if content is not None:
            prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
            self._send(status, completion_body(content, str(body.get("model")), prompt_tokens))
        elif status == HTTPStatus.BAD_REQUEST:
            self._send(status, error_body(status, "stub: no scripted completion left"))
        else:
            phrase = HTTPStatus(status).phrase
            self._send(status, error_body(status, f"stub: scripted {status} {phrase}"), retry=True)

    def _record(self, path: str, body: dict[str, Any], status: int) -> None:
        headers = {key.lower(): value for key, value in self.headers.items()}
        self.stub._record(RecordedRequest(path, headers, body, int(status)))

    def _send(self, status: int, payload: dict[str, Any], *, retry: bool = False) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if retry and self.stub.retry_after_ms is not None:
            self.send_header("retry-after-ms", str(self.stub.retry_after_ms))
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client left
            self.end_headers()
            self.wfile.write(data)
