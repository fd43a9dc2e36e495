"""`agentloop serve` refuses to listen beyond loopback without a token, and says how to give
one (the service itself runs under it in tests/serve/test_replicas.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentloop.cli import main


def test_a_public_address_needs_a_token(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["serve", "examples.serve_app:make_agent", "--host", "0.0.0.0", "--port", "0"])
    assert code == 2
    said = capsys.readouterr().err
    assert "--token-file" in said and "AGENTLOOP_SERVE_TOKEN" in said


def test_a_short_token_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    token = tmp_path / "token"
    token.write_text("short\n")
    code = main(["serve", "x:y", "--host", "0.0.0.0", "--token-file", str(token)])
    assert code == 2 and "at least 16 characters" in capsys.readouterr().err


def test_a_missing_token_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope"
    code = main(["serve", "x:y", "--token-file", str(missing)])
    assert code == 2 and str(missing) in capsys.readouterr().err
