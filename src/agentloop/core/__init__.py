"""The building blocks the engine and the agent are made of.

Targets and how their arguments are checked, fresh copies of smolagents agents (without
importing smolagents), references to another task's result, checks of caller input, agentloop's
own worker threads, slots, the thread-to-loop bridge, cancel signals for code in threads,
approvals and per-run model budgets. Each is small and knows nothing of registries or runs.

May import: the vocabulary (`errors`, `tasks`, `limits`, `_text`, `_util`) and `tracing`.
Never smolagents' agents or litellm. Re-exports nothing; `agentloop` is the public face.
"""
