"""Who is asking: a `Principal`, and the hooks that find one in a request.

The service never guesses an identity. With no `auth` hook it trusts the machine it runs on
and nothing else: it answers loopback clients only, all as one local admin. Any other setup
passes a hook, a coroutine that reads the request (a bearer token, a session cookie, a header
set by the proxy in front) and returns the principal, or `None` for 401. `bearer_tokens` is the
hook most deployments start with.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from starlette.requests import Request

from ..errors import InvalidArgumentsError

__all__ = ["LOCAL", "Auth", "Principal", "bearer_tokens"]


@dataclass(frozen=True, slots=True)
class Principal:
    """A caller of the service. It sees the runs it started; an `admin` sees every run."""

    name: str
    admin: bool = False

    def may_see(self, owner: str | None) -> bool:
        """Whether this caller may see (and act on) a run `owner` started."""
        return self.admin or owner == self.name


Auth = Callable[[Request], Awaitable[Principal | None]]
"""An authentication hook: the request's principal, or `None` to refuse it (401)."""

LOCAL = Principal("local", admin=True)
"""Every caller of a service without `auth` (which answers loopback clients only)."""


def bearer_tokens(tokens: Mapping[str, str | Principal]) -> Auth:
    """A hook accepting `Authorization: Bearer <token>` for the given tokens, each naming its
    principal (a name, or a `Principal` for an admin). Tokens are compared in constant time.

    ```python
    create_app(agents, auth=bearer_tokens({os.environ["OPS_TOKEN"]: Principal("ops", admin=True),
                                           os.environ["APP_TOKEN"]: "app"}))
    ```
    """
    known: list[tuple[bytes, Principal]] = []
    for token, who in tokens.items():
        if not isinstance(token, str) or len(token) < 16:
            raise InvalidArgumentsError(
                "each bearer token must be a string of at least 16 characters (e.g. "
                "`secrets.token_urlsafe(32)`)."
            )
        principal = who if isinstance(who, Principal) else Principal(str(who))
        known.append((token.encode(), principal))
    if not known:
        raise InvalidArgumentsError("`bearer_tokens` needs at least one token.")

    async def authenticate(request: Request) -> Principal | None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            return None
        presented = given.strip().encode()
        found = None
        for token, principal in known:  # every token compared: no early exit to time
            if hmac.compare_digest(token, presented):
                found = principal
        return found

    return authenticate
