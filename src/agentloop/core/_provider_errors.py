"""Which model-call errors are worth another attempt, and how long the provider asked to wait.

Read by duck typing, since the core never imports litellm or an SDK: an HTTP status from
`status_code` (litellm's and openai's errors), `response.status_code` (httpx) or `status`
(aiohttp); else the error's class names (litellm's `Timeout`, `APIConnectionError`,
`RateLimitError`, openai's `APITimeoutError`, httpx's `TimeoutException`, Python's
`TimeoutError` and `ConnectionError`). Transient: 408, 409, 425, 429 and 5xx (as the openai SDK
retries), timeouts and lost connections. A request the provider refused for what it says (400,
401, 403, 404, 413, 422: a bad request, a bad key, a prompt too long) fails the same way again,
so it is not retried.

The wait the provider asks for comes from the response's headers: `retry-after-ms`
(milliseconds, OpenAI and Azure send it), else `retry-after` (seconds, or an HTTP date).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Transient", "retry_after", "transient"]

TRANSIENT_STATUSES = frozenset({408, 409, 425, 429})
"""Client-side statuses worth retrying (plus every 5xx)."""

TRANSIENT_CLASS_NAMES = frozenset(
    {
        "APIConnectionError",
        "APITimeoutError",
        "ConnectError",
        "ConnectTimeout",
        "ConnectionError",
        "InternalServerError",
        "RateLimitError",
        "ReadError",
        "ReadTimeout",
        "RemoteProtocolError",
        "ServiceUnavailableError",
        "Timeout",
        "TimeoutError",
        "TimeoutException",
    }
)
"""Error classes that are transient whatever they carry (any class in the error's MRO)."""


@dataclass(frozen=True, slots=True)
class Transient:
    """Why a failed call is worth another attempt."""

    status: int | None
    """The HTTP status, if the error carries one."""
    error_type: str

    @property
    def reason(self) -> str:
        return f"HTTP {self.status} {self.error_type}" if self.status else self.error_type


def transient(error: BaseException) -> Transient | None:
    """`Transient` if another attempt may succeed, else None (the error is final)."""
    status = _status(error)
    name = type(error).__name__
    if status is not None:
        return Transient(status, name) if status in TRANSIENT_STATUSES or status >= 500 else None
    if any(cls.__name__ in TRANSIENT_CLASS_NAMES for cls in type(error).__mro__):
        return Transient(None, name)
    return None


def retry_after(error: BaseException) -> float | None:
    """Seconds the provider asked the client to wait (`retry-after-ms`, else `retry-after`),
    or None if it did not say (or said something unreadable)."""
    headers = _headers(error)
    if headers is None:
        return None
    millis = _header(headers, "retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    seconds = _header(headers, "retry-after")
    if seconds is None:
        return None
    try:
        return max(0.0, float(seconds))
    except ValueError:
        pass
    import email.utils  # here: 18 modules `import agentloop` does not otherwise need

    try:
        when = email.utils.parsedate_to_datetime(seconds)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _status(error: BaseException) -> int | None:
    for holder, name in (
        (error, "status_code"),
        (getattr(error, "response", None), "status_code"),
        (error, "status"),
    ):
        value = getattr(holder, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
            return value
    return None


def _headers(error: BaseException) -> Any:
    response = getattr(error, "response", None)
    for headers in (
        getattr(response, "headers", None),
        getattr(error, "litellm_response_headers", None),
        getattr(error, "headers", None),
    ):
        if headers is not None and hasattr(headers, "get"):
            return headers
    return None


def _header(headers: Any, name: str) -> str | None:
    value = headers.get(name)
    if value is None and isinstance(headers, Mapping):  # a plain dict: its keys' case varies
        value = next((v for k, v in headers.items() if str(k).lower() == name), None)
    return None if value is None else str(value).strip()
