"""An OpenAI-compatible chat-completions server on 127.0.0.1 that serves scripted replies.

The CLI tests run `agentloop run` in a subprocess against this stub, so the real litellm →
HTTP path is exercised (headers, JSON shapes, status codes, retries) without any network or
API key. The stub is a stdlib `ThreadingHTTPServer` on a free port, served by one thread the
test owns; `with LLMStub(...) as stub:` bounds its lifetime to the test.

Scripting: `replies` are assistant message contents, served in order; when they run out,
`respond(request)` (if given) writes the reply from the request, so concurrent runs can share
one stub. `fail_first(n, status)` answers the next `n` requests with an OpenAI-style JSON error
instead (e.g. 429 or 500), before any reply is consumed; `fail_next(*statuses, retry_after=...)`
does the same for a mixed list, with the `Retry-After` header to send; `delay_next(*seconds)`
makes the next requests slow. Every request is recorded (path, headers, JSON body), including
the failed ones, so tests can assert what the client sent and how often it retried.

Streaming: a request with `"stream": true` is answered as `text/event-stream` in OpenAI's chunk
format: a first chunk with the role, the reply's text in several chunks (`chunk_chars` characters
each, or one word each by default), a chunk with `finish_reason`, a chunk with `usage` when
`stream_options.include_usage` is true, then `data: [DONE]`. `chunk_delay` pauses between
chunks; `stream_gate` (a `threading.Event`) holds the rest of every stream after its first
`gate_after` text chunks until the test sets it, so a test can observe deltas mid-reply.

A real rate limit: `rate_limit=(n, seconds)` admits at most `n` requests in any sliding window
of `seconds`, and `token_limit=(n, seconds)` at most `n` tokens (prompt + reply, as `usage`
reports them); past either the stub answers 429 with `retry-after` (whole seconds, rounded up)
and `retry-after-ms` saying when enough frees. `rate_limited` counts those 429s and
`accepted_at` records when each admitted request arrived (`time.monotonic()`), so a test can
compute the throughput the client achieved against the limit.

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
import math
import os
import re
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from .._net import served
from ._stub_window import Admission, SlidingWindow

__all__ = ["Failure", "LLMStub", "RecordedRequest"]

_PATHS = ("/v1/chat/completions", "/chat/completions")
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    429: "rate_limit_exceeded",
    500: "server_error",
    503: "server_error",
}
_WORDS = re.compile(r"\s*\S+\s*|\s+")
_DEFAULT = object()


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the stub received, with the status it answered."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    status: int
    at: float = 0.0
    """When it arrived (`time.monotonic()`)."""

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))

    @property
    def streamed(self) -> bool:
        return bool(self.body.get("stream"))

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


@dataclass(frozen=True, slots=True)
class Failure:
    """A scripted error answer: the status, and the retry headers sent with it (None: none)."""

    status: int
    retry_after: str | None = None
    """The `retry-after` header as sent: whole seconds ("2") or an HTTP date."""
    retry_after_ms: int | None = None


@dataclass
class _Script:
    replies: deque[str]
    failures: deque[Failure] = field(default_factory=deque)
    delays: deque[float] = field(default_factory=deque)
    requests: list[RecordedRequest] = field(default_factory=list)
    accepted_at: list[float] = field(default_factory=list)
    rate_limited: int = 0
    streams_ended: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    held: int = 0
    wakers: set[int] = field(default_factory=set)
    """Write ends of the pipes held handlers watch; `release()` writes to each."""


class LLMStub:
    """A scripted OpenAI-compatible server. Use as a context manager.

    Args:
        replies: assistant message contents, one per successful request, in order.
        respond: writes a reply from the request once `replies` ran out (None: answer 400).
        delay: seconds to wait before answering each request (simulated latency).
        retry_after_ms: sent as `retry-after-ms` on `fail_first` answers, so a client that
            honours it (the openai SDK does) retries promptly instead of backing off for seconds.
        rate_limit: `(n, seconds)`: at most `n` requests admitted in any `seconds` window.
        token_limit: `(n, seconds)`: at most `n` tokens (prompt + reply) in any `seconds` window.
        chunk_chars: a streamed reply's text chunk size (None: one word per chunk).
        chunk_delay: seconds between streamed chunks.
        stream_gate: holds every stream after its first `gate_after` text chunks until set.
    """

    def __init__(
        self,
        replies: Iterable[str] = (),
        *,
        respond: Callable[[RecordedRequest], str] | None = None,
        delay: float = 0.0,
        retry_after_ms: int | None = 20,
        rate_limit: tuple[int, float] | None = None,
        token_limit: tuple[int, float] | None = None,
        chunk_chars: int | None = None,
        chunk_delay: float = 0.0,
        stream_gate: threading.Event | None = None,
        gate_after: int = 1,
    ) -> None:
        self._script = _Script(replies=deque(replies))
        self.respond = respond
        self.delay = delay
        self.retry_after_ms = retry_after_ms
        self._requests_window = SlidingWindow(*rate_limit) if rate_limit else None
        self._tokens_window = SlidingWindow(*token_limit) if token_limit else None
        if chunk_chars is not None and chunk_chars < 1:
            raise ValueError(f"chunk_chars must be >= 1 or None, got {chunk_chars}")
        self.chunk_chars = chunk_chars
        self.chunk_delay = chunk_delay
        self.stream_gate = stream_gate
        self.gate_after = gate_after
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
        self.fail_next(*[status] * count)

    def fail_next(
        self, *statuses: int, retry_after: str | float | None = None, retry_after_ms: Any = _DEFAULT
    ) -> None:
        """Answer the next requests with these statuses, in order, each with an OpenAI-style
        error and these retry headers (`retry_after_ms` defaults to the stub's own)."""
        ms = self.retry_after_ms if retry_after_ms is _DEFAULT else retry_after_ms
        header = None if retry_after is None else str(retry_after)
        with self._script.lock:
            self._script.failures.extend(Failure(status, header, ms) for status in statuses)

    def delay_next(self, *seconds: float) -> None:
        """Make the next requests wait these seconds (one each, in order) before answering."""
        with self._script.lock:
            self._script.delays.extend(seconds)

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

    # -- what happened --------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._script.lock:
            return list(self._script.requests)

    @property
    def rate_limited(self) -> int:
        """How many 429s the rate or token limit sent (scripted failures not included)."""
        with self._script.lock:
            return self._script.rate_limited

    @property
    def accepted_at(self) -> list[float]:
        """When each request the limits admitted arrived (`time.monotonic()`), in order."""
        with self._script.lock:
            return list(self._script.accepted_at)

    @property
    def streams_ended(self) -> int:
        """How many streamed replies were written to their end (`data: [DONE]`)."""
        with self._script.lock:
            return self._script.streams_ended

    # -- answering (handler threads) ------------------------------------------------------------

    def _admit(self, now: float, tokens: int) -> tuple[float, Admission | None]:
        """(0.0, the token admission) if the limits admit a request now, else (seconds, None)."""
        with self._script.lock:
            wait = max(
                self._requests_window.wait(now, 1) if self._requests_window else 0.0,
                self._tokens_window.wait(now, tokens) if self._tokens_window else 0.0,
            )
            if wait > 0.0:
                self._script.rate_limited += 1
                return wait, None
            if self._requests_window:
                self._requests_window.admit(now, 1)
            admission = self._tokens_window.admit(now, tokens) if self._tokens_window else None
            self._script.accepted_at.append(now)
            return 0.0, admission

    def _charge(self, admission: Admission | None, tokens: int) -> None:
        if admission is not None and self._tokens_window is not None:
            with self._script.lock:
                self._tokens_window.charge(admission, tokens)

    def _next_delay(self) -> float:
        with self._script.lock:
            return self._script.delays.popleft() if self._script.delays else self.delay

    def _next(self, request: RecordedRequest) -> Failure | str | None:
        """A scripted failure, else the next reply, else `respond`'s, else None (no reply)."""
        with self._script.lock:
            if self._script.failures:
                return self._script.failures.popleft()
            if self._script.replies:
                return self._script.replies.popleft()
        return self.respond(request) if self.respond is not None else None

    def _record(self, request: RecordedRequest) -> None:
        with self._script.lock:
            self._script.requests.append(request)

    def _chunks(self, content: str) -> list[str]:
        if self.chunk_chars is None:
            return _WORDS.findall(content) or [content]
        size = self.chunk_chars
        return [content[i : i + size] for i in range(0, len(content), size)] or [content]

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
        if self.stream_gate is not None:
            self.stream_gate.set()
        self._serving.close()
        self._server = None


def count_tokens(text: str) -> int:
    """The stub's token count: whitespace-separated words, at least 1."""
    return max(1, len(text.split()))


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def completion_body(content: str, model: str, prompt_tokens: int) -> dict[str, Any]:
    """A non-streaming chat completion in OpenAI's JSON shape."""
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
        "usage": usage(prompt_tokens, count_tokens(content)),
    }


def stream_events(
    chunks: list[str], model: str, prompt_tokens: int, *, include_usage: bool
) -> Iterator[dict[str, Any]]:
    """A streamed chat completion in OpenAI's chunk shape: role, text chunks, finish, usage."""
    base = {
        "id": f"chatcmpl-stub-{time.monotonic_ns()}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_stub",
    }
    extra: dict[str, Any] = {"usage": None} if include_usage else {}

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {**base, "choices": [choice], **extra}

    yield chunk({"role": "assistant", "content": ""})
    for text in chunks:
        yield chunk({"content": text})
    yield chunk({}, "stop")
    if include_usage:
        yield {**base, "choices": [], "usage": usage(prompt_tokens, count_tokens("".join(chunks)))}


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
        arrived = time.monotonic()
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            body = {"_raw": raw.decode("utf-8", "replace")}
        if path not in _PATHS:
            self._record(path, body, HTTPStatus.NOT_FOUND, arrived)
            self._send(HTTPStatus.NOT_FOUND, error_body(404, f"stub: no route {path}"))
            return
        prompt_tokens = sum(count_tokens(str(m.get("content", ""))) for m in body["messages"])
        wait, admission = self.stub._admit(arrived, prompt_tokens)
        if wait > 0.0:
            self._record(path, body, HTTPStatus.TOO_MANY_REQUESTS, arrived)
            self._refuse(wait)
            return
        self.stub._wait_if_held(self.connection)
        delay = self.stub._next_delay()
        if delay:
            time.sleep(delay)
        outcome = self.stub._next(self._request(path, body, HTTPStatus.OK, arrived))
        if isinstance(outcome, str):
            self._record(path, body, HTTPStatus.OK, arrived)
            self.stub._charge(admission, count_tokens(outcome))
            model = str(body.get("model"))
            if body.get("stream"):
                options = body.get("stream_options") or {}
                events = stream_events(
                    self.stub._chunks(outcome),
                    model,
                    prompt_tokens,
                    include_usage=bool(options.get("include_usage")),
                )
                self._stream(events)
            else:
                self._send(HTTPStatus.OK, completion_body(outcome, model, prompt_tokens))
        elif outcome is None:
            self._record(path, body, HTTPStatus.BAD_REQUEST, arrived)
            message = "stub: no scripted completion left"
            self._send(HTTPStatus.BAD_REQUEST, error_body(400, message))
        else:
            self._record(path, body, outcome.status, arrived)
            phrase = HTTPStatus(outcome.status).phrase
            message = f"stub: scripted {outcome.status} {phrase}"
            headers = {"retry-after": outcome.retry_after, "retry-after-ms": outcome.retry_after_ms}
            self._send(outcome.status, error_body(outcome.status, message), headers)

    def _refuse(self, wait: float) -> None:
        """A 429 past the rate or token limit, saying when enough frees."""
        ms = math.ceil(wait * 1000)
        message = f"stub: rate limit reached; retry in {ms} ms"
        headers = {"retry-after": str(math.ceil(wait)), "retry-after-ms": ms}
        self._send(HTTPStatus.TOO_MANY_REQUESTS, error_body(429, message), headers)

    def _request(self, path: str, body: dict[str, Any], status: int, at: float) -> RecordedRequest:
        headers = {key.lower(): value for key, value in self.headers.items()}
        return RecordedRequest(path, headers, body, int(status), at)

    def _record(self, path: str, body: dict[str, Any], status: int, at: float) -> None:
        self.stub._record(self._request(path, body, status, at))

    def _send(
        self, status: int, payload: dict[str, Any], headers: dict[str, Any] | None = None
    ) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            if value is not None:
                self.send_header(name, str(value))
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client left
            self.end_headers()
            self.wfile.write(data)

    def _stream(self, events: Iterable[dict[str, Any]]) -> None:
        """Server-sent events in HTTP/1.1 chunked encoding, flushed one event at a time."""
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        stub, texts = self.stub, 0
        try:
            self.end_headers()
            for event in events:
                choices = event.get("choices") or [{}]
                if "content" in choices[0].get("delta", {}) and choices[0]["delta"]["content"]:
                    if stub.stream_gate is not None and texts == stub.gate_after:
                        stub.stream_gate.wait()
                    if texts and stub.chunk_delay:
                        time.sleep(stub.chunk_delay)
                    texts += 1
                self._write_chunk(f"data: {json.dumps(event)}\n\n".encode())
            self._write_chunk(b"data: [DONE]\n\n")
            self._write_chunk(b"")
            with stub._script.lock:
                stub._script.streams_ended += 1
        except (BrokenPipeError, ConnectionResetError):  # the client left mid-stream
            self.close_connection = True

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()
