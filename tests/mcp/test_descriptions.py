"""Server descriptions, names, schemas and results, without a server (fast, no process)."""

from __future__ import annotations

from typing import Any

import mcp_types
import pytest

from agentloop import InvalidArgumentsError, MCPToolError, TaskRegistry
from agentloop.core._targets import Target
from agentloop.engine._sources import resolve_names
from agentloop.mcp import MCPServer
from agentloop.mcp._results import tool_result
from agentloop.mcp._schema import inputs_from_schema, schema_check
from agentloop.mcp._source import target_name
from agentloop.tasks import TaskType


@pytest.mark.parametrize(
    ("command", "args", "name"),
    [
        ("npx", ["-y", "@modelcontextprotocol/server-filesystem", "."], "server_filesystem"),
        ("python", ["weather.py", "stdio"], "weather"),
        ("uvx", ["mcp-server-git", "--repository", "/srv/repo"], "mcp_server_git"),
        ("/usr/local/bin/my-server", [], "my_server"),
    ],
)
def test_a_stdio_server_is_named_from_its_command_line(
    command: str, args: list[str], name: str
) -> None:
    assert MCPServer.stdio(command, args).name == name


def test_descriptions_refuse_what_would_fail_later_and_say_what_is_valid() -> None:
    with pytest.raises(InvalidArgumentsError, match=r"Did you mean `max_concurrent`\? Valid: "):
        MCPServer.stdio("x", max_concurent=3)
    with pytest.raises(InvalidArgumentsError, match="a timeout of 0 would fail every call"):
        MCPServer.http("http://127.0.0.1:1/mcp", call_timeout=0)
    with pytest.raises(InvalidArgumentsError, match="needs an http\\(s\\) URL"):
        MCPServer.http("127.0.0.1:8000/mcp")
    with pytest.raises(InvalidArgumentsError, match="must be a Python identifier"):
        MCPServer.stdio("x", name="my server")
    with pytest.raises(InvalidArgumentsError, match="`max_concurrent` must be a positive"):
        MCPServer.stdio("x", max_concurrent=0)
    with pytest.raises(InvalidArgumentsError, match="two MCP servers are named `same`"):
        TaskRegistry(
            mcp_servers=[MCPServer.stdio("a", name="same"), MCPServer.stdio("b", name="same")]
        )
    with pytest.raises(
        InvalidArgumentsError, match=r"`mcp_servers` takes `agentloop\.mcp\.MCPServer`"
    ):
        TaskRegistry(mcp_servers=["npx server"])


def test_tool_names_become_identifiers() -> None:
    assert target_name("get-weather", None) == "get_weather"
    assert target_name("files.read", "fs_") == "fs_files_read"
    assert target_name("2fa", None) == "_2fa"
    assert target_name("import", None) == "import_"


def _target(name: str) -> Target:
    return Target(
        name=name, task_type=TaskType.TOOL, description="", inputs={}, accepts_extra=False,
        is_async=True, call=lambda arguments: None,
    )  # fmt: skip


def test_a_name_taken_twice_is_prefixed_in_every_source_that_has_it() -> None:
    listed = {
        "github": [_target("search"), _target("issues"), _target("print")],
        "docs": [_target("search"), _target("fetch")],
    }
    names = [t.name for t in resolve_names({"fetch"}, listed, frozenset({"print"}))]
    assert names == ["github_search", "issues", "github_print", "docs_search", "docs_fetch"]
    again = {"docs": listed["docs"], "github": listed["github"]}  # whatever the order
    assert sorted(t.name for t in resolve_names({"fetch"}, again, frozenset({"print"}))) == sorted(
        names
    )


def test_an_input_schema_gives_the_signature_and_a_full_check() -> None:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "query": {"type": "string", "description": "What to look for."},
            "limit": {"type": "integer", "minimum": 1, "default": 10},
            "tags": {"anyOf": [{"type": "array"}, {"type": "null"}]},
        },
        "required": ["query"],
    }
    inputs = inputs_from_schema(schema)
    assert [(i.name, i.types, i.required, i.default) for i in inputs.values()] == [
        ("query", ("string",), True, ""),
        ("limit", ("integer",), False, "10"),
        ("tags", ("array",), False, "None"),
    ]
    check = schema_check(schema)
    assert check is not None
    assert check({"query": "x", "limit": 0}) == "input `limit`: 0 is less than the minimum of 1"
    assert check({"query": "x", "limit": {"$result_of": "t1"}}) is None  # the server judges
    plain = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    assert schema_check(plain) is None  # the declared inputs' checks cover it


def _tool(output_schema: dict[str, Any] | None = None) -> mcp_types.Tool:
    return mcp_types.Tool(name="t", input_schema={"type": "object"}, output_schema=output_schema)


def test_results_become_values_the_model_can_use() -> None:
    text = mcp_types.TextContent(type="text", text="hello")
    image = mcp_types.ImageContent(type="image", data="AAAA" * 1000, mime_type="image/png")
    link = mcp_types.ResourceLink(type="resource_link", uri="file:///a.txt", name="a.txt")
    assert tool_result(mcp_types.CallToolResult(content=[text]), _tool(), "s") == "hello"
    both = mcp_types.CallToolResult(content=[text, image, link])
    assert tool_result(both, _tool(), "s") == (
        "hello\n[image: image/png, 3.0 kB]\n[resource link: file:///a.txt (a.txt)]"
    )
    wrapped = {"type": "object", "properties": {"result": {"type": "integer"}}}
    structured = mcp_types.CallToolResult(content=[], structured_content={"result": 5})
    assert tool_result(structured, _tool(wrapped), "s") == 5
    assert tool_result(structured, _tool(), "s") == {"result": 5}
    failed = mcp_types.CallToolResult(content=[text], is_error=True)
    with pytest.raises(MCPToolError, match=r"^`t` \(MCP server `s`\) reported an error: hello$"):
        tool_result(failed, _tool(), "s")
