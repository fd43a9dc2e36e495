"""Test doubles for agentloop users: deterministic models and leak checks.

`ScriptedModel` and `FunctionModel` stand in for an LLM; the pytest plugin (installed with the
package, through the `pytest11` entry point) adds the `agentloop_leak_check` fixture.
"""

from .leaks import assert_no_leaks, settled_threads
from .messages import images, last_observation, task_text, turn
from .models import FunctionModel, ScriptedModel, code_reply

__all__ = [
    "FunctionModel",
    "ScriptedModel",
    "assert_no_leaks",
    "code_reply",
    "images",
    "last_observation",
    "settled_threads",
    "task_text",
    "turn",
]
