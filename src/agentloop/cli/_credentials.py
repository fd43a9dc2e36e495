"""Which key and endpoint `agentloop run` gives LiteLLM, from what users already have set.

Users of LiteLLM keep their keys in LiteLLM's standard variables (`OPENAI_API_KEY`,
`ANTHROPIC_API_KEY`, `GEMINI_API_KEY`, ...), and a local server (Ollama, vLLM, LM Studio, a
llama.cpp server) needs no key at all. `async_task_system`'s examples used `API_KEY` and
`BASE_URL` instead. All three work, in this order:

1. `API_KEY` (environment, then the env file) is the key, whatever the provider.
2. Otherwise no key is passed, and LiteLLM reads the provider's own variable, as it does for
   any LiteLLM user; `litellm.validate_environment` (offline) says up front whether it is set.
3. If it is not, but an endpoint was given (`--base-url`, or `BASE_URL`), the server is taken
   as one that needs no key: the OpenAI client still refuses to send a request without one,
   so a placeholder (`KEYLESS`) is sent, which such a server ignores.
4. Otherwise the run would fail at its first call with a provider error, so it stops here
   with one line naming the variables LiteLLM looked for (exit code 2).

The endpoint is `--base-url`, else `BASE_URL`, else the provider's own (or LiteLLM's variable
for it, such as `OPENAI_BASE_URL`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["KEYLESS", "Credentials", "MissingKeyError", "credentials", "endpoint"]

KEYLESS = "no-key"
"""The key sent to an endpoint that needs none (a local server): the OpenAI client requires
one to be set."""


class MissingKeyError(Exception):
    """No key anywhere for a provider that needs one (a usage error: exit code 2)."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """What the model is built with: `api_key` None lets LiteLLM read the provider's variable."""

    api_key: str | None
    base_url: str | None
    source: str
    """Where the key comes from, for messages: `API_KEY`, a provider variable, or none."""


def endpoint(base_url_option: str | None) -> str | None:
    """`--base-url`, else `BASE_URL` (`None`: the provider's own)."""
    return base_url_option or os.environ.get("BASE_URL") or None


def credentials(model_id: str, base_url: str | None, env_file: str) -> Credentials:
    """The key for `model_id` (a model id LiteLLM routes) at `base_url` (see `endpoint`), the
    env file already read into the environment; raises `MissingKeyError` when the provider
    needs a key and none is set."""
    import litellm

    api_key = os.environ.get("API_KEY") or None
    if api_key is not None:
        return Credentials(api_key, base_url, "API_KEY")
    check = litellm.validate_environment(model=model_id, api_base=base_url)
    if check.get("keys_in_environment"):
        return Credentials(None, base_url, "LiteLLM's variables for the provider")
    if base_url is not None:
        return Credentials(KEYLESS, base_url, "none (a local endpoint)")
    missing = [str(name) for name in check.get("missing_keys") or []]
    looked_for = " / ".join(missing) if missing else "the provider's key variable"
    raise MissingKeyError(
        f"no API key for --model {model_id!r}: LiteLLM looks for {looked_for}; set it (or "
        f"API_KEY) in the environment or in {env_file}. A local server needs no key: give "
        "its URL with --base-url (or BASE_URL)."
    )
