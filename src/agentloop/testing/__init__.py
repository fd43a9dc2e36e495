"""Deterministic test doubles for agentloop users: models, and a pytest plugin."""
