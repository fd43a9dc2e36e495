"""The run service: `create_app(agents, ...)` serves runs, their resumable event streams,
approvals and sessions as JSON + SSE, and the operations console (docs/serve.md).

Install with `pip install "agentloop-smol[serve]"` (Starlette and uvicorn).
"""

from .._util import report_as
from ._auth import LOCAL, Auth, Principal, bearer_tokens
from ._runs import ServedAgent
from ._sessions import Busy
from .app import LOOPBACK_HOSTS, create_app

__all__ = [
    "LOCAL",
    "LOOPBACK_HOSTS",
    "Auth",
    "Busy",
    "Principal",
    "ServedAgent",
    "bearer_tokens",
    "create_app",
]

report_as(__name__, globals(), __all__)
