"""Tracing: agentloop's own spans, through the OpenTelemetry API only.

The run, task and model-call spans, the bounded values they carry, and what agentloop needs to
know of openinference's smolagents instrumentation. Installs no exporter and starts no thread:
the application passes a tracer provider in, or the global one is used.

May import: the vocabulary (`errors`, `tasks`, `limits`, `_text`, `_util`, `_version`) only.
Re-exports nothing; `agentloop` is the public face.
"""
