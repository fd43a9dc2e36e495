"""What the controller model is told: the guidance section and the per-task hint."""

from .guidance import TASK_HINT, render_guidance

__all__ = ["TASK_HINT", "render_guidance"]
