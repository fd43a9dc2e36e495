"""The task engine: `TaskRegistry`, its run scopes, and how one task runs.

Task records and a scope's table of them, the checks a submission passes, the catalog of
registered targets, the event bus, the loop watchdog, the runner (dependencies, slots,
timeouts, retries), the engine every scope of a registry shares, the journal's side of a run
scope, the scope and the registry. Runs plain async and sync callables on its own: smolagents
`Tool`s and agents are adapted at its edge (`core`), never imported here.

May import: the vocabulary, `core`, `backends`, `tracing` and `journal`. Never smolagents'
agents or litellm. Re-exports nothing; `agentloop` is the public face.
"""
