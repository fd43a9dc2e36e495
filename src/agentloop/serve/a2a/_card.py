"""A served agent's A2A card: who it is, what it can do, how to reach it, how to sign in.

Skills are the agent's targets (its tools and managed agents: what it can do for a caller,
as the model sees them); the interface is JSON-RPC at the agent's A2A URL, streaming; the
security scheme follows the service's: HTTP bearer when it has an `auth` hook (the hook may
read anything, but `bearer_tokens` is what most deployments use and what clients can send).
"""

from __future__ import annotations

from typing import Any

from ..._text import bounded
from .._runs import ServedAgent

__all__ = ["agent_card"]

PROTOCOL_VERSION = "1.0"


def agent_card(served: ServedAgent, url: str, *, authenticated: bool, version: str) -> Any:
    """The `AgentCard` of `served`, reachable at `url` (its A2A base URL)."""
    from a2a.types.a2a_pb2 import (
        AgentCapabilities,
        AgentCard,
        AgentInterface,
        AgentSkill,
        HTTPAuthSecurityScheme,
        SecurityRequirement,
        SecurityScheme,
        StringList,
    )

    agent = served.agent
    skills = [
        AgentSkill(
            id=target.name,
            name=target.name,
            description=bounded(target.description or target.name, 1000),
            tags=[target.task_type.value],
        )
        for target in agent.task_manager.targets()
    ]
    card = AgentCard(
        name=served.title or served.name,
        description=bounded(agent.description, 2000),
        version=version,
        supported_interfaces=[
            AgentInterface(url=url, protocol_binding="JSONRPC", protocol_version=PROTOCOL_VERSION)
        ],
        capabilities=AgentCapabilities(streaming=True, push_notifications=False),
        default_input_modes=["text/plain", "application/json"],
        default_output_modes=["text/plain", "application/json"],
        skills=skills,
    )
    if authenticated:
        card.security_schemes["bearer"].CopyFrom(
            SecurityScheme(http_auth_security_scheme=HTTPAuthSecurityScheme(scheme="Bearer"))
        )
        card.security_requirements.append(SecurityRequirement(schemes={"bearer": StringList()}))
    return card
