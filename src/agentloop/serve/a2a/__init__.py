"""A2A for the run service: every served agent as an A2A server, and remote A2A agents as
managed agents of an `AsyncAgent` (docs/protocols.md).

`create_app` mounts the server under `/a2a/{agent}/` when `a2a-sdk` is installed;
`A2AAgent(url)` is the client. Install with `pip install "agentloop-smol[a2a]"`.
"""

from ..._util import report_as
from ._client import A2AAgent, RemoteAgentError

__all__ = ["A2AAgent", "RemoteAgentError"]

report_as(__name__, globals(), __all__)
