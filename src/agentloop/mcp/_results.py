"""What an MCP tool's result becomes for the model's code: a value it can use directly.

- structured content (`structuredContent`) is returned as the dict it is; a tool whose output
  schema holds only `result` (how the SDK wraps a plain return value) gives that value;
- otherwise the content blocks: text as text, several blocks joined by newlines; an image or
  audio block is described (`[image: image/png, 2.1 kB]`), never dropped, never inlined as
  base64; an embedded text resource gives its text, a binary one is described; a resource link
  names its URI;
- a result with `isError` raises `MCPToolError` with the tool's own text, so the task fails and
  the model reads why.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._text import bounded
from ..errors import MCPToolError

if TYPE_CHECKING:
    from mcp_types import CallToolResult, Tool

__all__ = ["tool_result"]

MAX_ERROR_TEXT = 2000


def tool_result(result: CallToolResult, tool: Tool, server: str) -> Any:
    """The value a call returns to the model's code (see the module docstring)."""
    if result.is_error:
        text = "\n".join(_block_text(block) for block in result.content) or "(no message)"
        raise MCPToolError(
            f"`{tool.name}` (MCP server `{server}`) reported an error: "
            f"{bounded(text, MAX_ERROR_TEXT)}"
        )
    structured = result.structured_content
    if structured is not None:
        properties = (tool.output_schema or {}).get("properties")
        wrapped = isinstance(properties, dict) and list(properties) == ["result"]
        if wrapped and isinstance(structured, dict) and list(structured) == ["result"]:
            return structured["result"]
        return structured
    parts = [_block_text(block) for block in result.content]
    return parts[0] if len(parts) == 1 else "\n".join(parts)


def _block_text(block: Any) -> str:
    kind = getattr(block, "type", None)
    if kind == "text":
        return str(block.text)
    if kind in ("image", "audio"):
        return f"[{kind}: {block.mime_type}, {_size(block.data)}]"
    if kind == "resource":
        resource = block.resource
        text = getattr(resource, "text", None)
        if isinstance(text, str):
            return text
        mime = getattr(resource, "mime_type", None) or "binary"
        return f"[resource {resource.uri}: {mime}, {_size(getattr(resource, 'blob', ''))}]"
    if kind == "resource_link":
        title = f" ({block.name})" if getattr(block, "name", None) else ""
        return f"[resource link: {block.uri}{title}]"
    return f"[{kind or type(block).__name__} content]"


def _size(data: str) -> str:
    """The decoded size of base64 `data`, readable (without decoding it)."""
    count = len(data) * 3 // 4 - data.count("=", max(len(data) - 2, 0))
    if count < 1000:
        return f"{count} bytes"
    return f"{count / 1000:.1f} kB" if count < 1_000_000 else f"{count / 1_000_000:.1f} MB"
