"""Where tasks execute: `local` (default, this process) or `ray` (a Ray cluster).

The runner owns limits, timeouts, retries, scopes and tracing; a backend only runs one attempt
of a target and says when that work has really ended. Choose one with
`TaskRegistry(backend=...)` / `create_async_agent(..., backend=...)`: a name, or a backend
object for options (e.g. `RayBackend(address="ray://head:10001")`).
"""

from __future__ import annotations

from typing import Literal

from .. import _util
from ..errors import InvalidArgumentsError
from .base import Backend, TargetFailed, describe
from .local import LocalBackend

__all__ = ["Backend", "BackendSpec", "LocalBackend", "TargetFailed", "describe", "resolve_backend"]

BackendSpec = Literal["local", "ray"] | Backend


def resolve_backend(spec: BackendSpec) -> Backend:
    """A backend object for a name (created with defaults) or the object itself."""
    if spec == "local":
        return LocalBackend()
    if spec == "ray":
        from .ray import RayBackend  # optional extra: `pip install "agentloop-smol[ray]"`

        return RayBackend()
    if isinstance(spec, Backend):
        return spec
    raise InvalidArgumentsError(
        f"unknown backend {spec!r}; use 'local', 'ray', or a backend object such as "
        "RayBackend(address=...)."
    )


_util.report_as(__name__, globals(), __all__)
