"""The controller: a smolagents `CodeAgent` that drives its own parallel work.

`AsyncAgent` and `create_async_agent` (configuration, built once per agent), sessions, one run
and its turn, the controller's `CodeAgent`, the task tools the model's code calls, the
observations and guidance the model reads, durable runs, and `RunStream`.

May import: everything below it (the vocabulary, `tracing`, `journal`, `core`, `backends`,
`engine`) and smolagents. Nothing below imports it. Re-exports nothing; `agentloop` is the
public face.
"""
