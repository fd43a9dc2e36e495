"""The operations console's files: packaged, served by the app, complete, and safe by
construction (the page's behaviour is tested in a browser: tests/browser/test_console.py).

Fast checks of what a browser test would only catch late or never: a module the page imports
but the app does not serve (a blank page), an absolute URL (breaks a mounted app), a CDN or web
font (no network), and HTML built from data (task texts and model output are hostile).
"""

from __future__ import annotations

import re
from importlib import resources

import pytest

pytest.importorskip("starlette")

from starlette.testclient import TestClient

from agentloop.serve import create_app
from agentloop.testing import ScriptedModel

CONSOLE = resources.files("agentloop.serve").joinpath("console")
IMPORT = re.compile(r"""^import\s[^"']*["']([^"']+)["'];""", re.MULTILINE)
ASSET = re.compile(r"""(?:src|href)="([^"]+)\"""")


def _text(name: str) -> str:
    return CONSOLE.joinpath(name).read_text(encoding="utf-8")


def _modules() -> set[str]:
    """The JavaScript the page loads: its entry module and, transitively, what it imports."""
    found: set[str] = set()
    todo = ["console.js"]
    while todo:
        name = todo.pop()
        if name in found:
            continue
        found.add(name)
        for target in IMPORT.findall(_text(name)):
            assert target.startswith("./"), f"{name} imports {target!r}: only sibling modules"
            todo.append(target.removeprefix("./"))
    return found


@pytest.fixture(scope="module")
def client() -> TestClient:
    from agentloop import create_async_agent

    agent = create_async_agent(tools=[], model=ScriptedModel(["final_answer(1)"]), name="a")
    app = create_app({"a": agent}, title="ops <console>", owns_agents=True)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield client


def test_the_page_and_every_module_it_loads_are_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert "<title>ops &lt;console&gt;</title>" in page.text  # the title is escaped
    assets = ASSET.findall(page.text)
    assert "static/console.js" in assets and "static/console.css" in assets
    for name in [*sorted(_modules()), "console.css"]:
        reply = client.get(f"/static/{name}")
        assert reply.status_code == 200, name
        kind = "text/css" if name.endswith(".css") else "text/javascript"
        assert reply.headers["content-type"].startswith(kind), (name, reply.headers)
        assert reply.text == _text(name)


def test_every_url_is_relative_and_nothing_comes_from_another_site() -> None:
    page = _text("index.html")
    for url in ASSET.findall(page):
        assert url.startswith(("static/", "#", "data:")), url
    for name in [*sorted(_modules()), "console.css", "index.html"]:
        text = _text(name)
        assert "http://" not in text and "https://" not in text, name
        assert "@import" not in text and "url(" not in text, name  # no fonts, no CDN
        # fetch("/api/...") would break a console mounted under a prefix
        assert not re.search(r"""(?:fetch|EventSource|getJson|postJson)\(\s*[`"']/""", text), name


def test_no_html_is_built_from_strings() -> None:
    """Everything the run sends is set as text: task texts, code, previews are hostile."""
    for name in sorted(_modules()):
        text = _text(name)
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in text, f"{name} uses {sink}"
