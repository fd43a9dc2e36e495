"""Reading `python -X importtime` output: did a command print before its slow imports?

A wall-clock limit ("first line within 0.5 s") flakes on a loaded machine; the order of the
first line and the slow imports does not. `-X importtime` writes one line per import to stderr
as the import ends, so with the command's own output on the same stream the order is exact.
"""

from __future__ import annotations

__all__ = ["HEAVY", "first_line_before_heavy_imports"]

HEAVY = {"smolagents", "litellm", "openai"}
"""Modules that take seconds to import on a cold start (litellm alone 3-5 s)."""


def first_line_before_heavy_imports(output: str) -> tuple[str, list[str]]:
    """The first line that is not `-X importtime` output, and the heavy imports before it."""
    heavy_before: list[str] = []
    for line in output.splitlines():
        if not line.startswith("import time:"):
            return line, heavy_before
        module = line.rsplit("|", 1)[-1].strip()
        if module.split(".")[0] in HEAVY:
            heavy_before.append(module)
    raise AssertionError(f"no output besides imports:\n{output[-2000:]}")
