"""The offline demo: four scenarios (batch, sources, ecommerce, quarterly), driven by a
scripted planner model.

No LLM is involved: a deterministic planner (clearly labelled as scripted) writes the kind of code
a good model writes with agentloop's tools, and the tools simulate realistic, uneven work.
"""

from .scenarios import SCENARIOS, Scenario

__all__ = ["SCENARIOS", "Scenario"]
