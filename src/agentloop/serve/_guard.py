"""What every request passes before a route sees it: who it is, and whether it may do this.

- **Identity.** The `auth` hook names the principal (401 without one). With no hook, only
  loopback clients are answered (403 for others): a service started without thinking about
  security is reachable from its own machine only, whatever address it was bound to.
- **Browser safety.** A request that changes state is a `POST` with a JSON body (a form or a
  plain link cannot send one cross-site without a CORS preflight, which this app never
  grants); a browser request from another site (`Sec-Fetch-Site: cross-site`, or an `Origin`
  that names another host than `Host`) is refused. `GET` changes nothing anywhere.
- **Bounds.** A body longer than `max_body_bytes` is refused before it is read whole; each
  principal may start `runs_per_minute` runs (a token bucket: bursts up to that many, then
  one per 60/N seconds), beyond which 429 says when to try again.
- The `Host` allow-list is Starlette's `TrustedHostMiddleware` (see `app.py`).
"""

from __future__ import annotations

import ipaddress
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from ._auth import LOCAL, Auth, Principal

__all__ = ["Guard", "Refused", "RunRate"]

_BROWSER_SITES_ALLOWED = {"same-origin", "none"}


class Refused(Exception):
    """A request the service refuses: its status, its message, maybe headers."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass
class RunRate:
    """A token bucket of new runs per principal."""

    per_minute: int
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def take(self, who: str, now: float | None = None) -> None:
        """Count one new run of `who`, or raise `Refused(429)` with `Retry-After`."""
        if self.per_minute <= 0:
            return
        now = time.monotonic() if now is None else now
        rate = self.per_minute / 60.0
        tokens, since = self._buckets.get(who, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - since) * rate)
        if tokens < 1.0:
            wait = math.ceil((1.0 - tokens) / rate)
            raise Refused(
                429,
                f"`{who}` started {self.per_minute} runs in the last minute, the most this "
                f"service allows; try again in {wait} s.",
                {"Retry-After": str(wait)},
            )
        self._buckets[who] = (tokens - 1.0, now)


@dataclass
class Guard:
    auth: Auth | None
    max_body_bytes: int

    async def principal(self, request: Request) -> Principal:
        """The caller, or `Refused` (401 / 403)."""
        if self.auth is None:
            if not _is_loopback(request):
                raise Refused(
                    403,
                    "this service has no authentication, so it answers its own machine only; "
                    "start it with a token (`agentloop serve --token-file`, or "
                    "`create_app(auth=bearer_tokens(...))`) to serve other hosts.",
                )
            return LOCAL
        found = await self.auth(request)
        if found is None:
            raise Refused(401, "authentication required.", {"WWW-Authenticate": "Bearer"})
        if not isinstance(found, Principal):
            raise TypeError(f"the `auth` hook returned {type(found).__name__}, not a Principal")
        return found

    def check_state_change(self, request: Request) -> None:
        """A request that changes state: JSON only, and never from another site's page."""
        site = request.headers.get("sec-fetch-site")
        if site is not None and site not in _BROWSER_SITES_ALLOWED:
            raise Refused(403, f"requests from another site's page are refused ({site}).")
        origin = request.headers.get("origin")
        if origin is not None and origin != "null":
            host = origin.partition("://")[2]
            if host != request.headers.get("host", ""):
                raise Refused(403, f"requests from another origin ({origin}) are refused.")
        elif origin == "null":
            raise Refused(403, "requests from an opaque origin are refused.")
        media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media != "application/json":
            raise Refused(415, "send a JSON body (`Content-Type: application/json`).")

    async def json_body(self, request: Request) -> dict[str, Any]:
        """The request's JSON object, read up to `max_body_bytes`, or `Refused`."""
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise Refused(413, f"the body is over {self.max_body_bytes} bytes.")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.max_body_bytes:
                raise Refused(413, f"the body is over {self.max_body_bytes} bytes.")
        try:
            value = json.loads(body or b"{}", parse_constant=_no_constant)
        except ValueError as exc:
            raise Refused(400, f"the body is not JSON: {exc}") from None
        if not isinstance(value, dict):
            raise Refused(400, "the body must be a JSON object.")
        return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _is_loopback(request: Request) -> bool:
    client = request.client
    if client is None:  # an in-process transport (tests, ASGI mounts) has no socket
        return True
    try:
        return ipaddress.ip_address(client.host).is_loopback
    except ValueError:
        return client.host in ("localhost", "testclient")
