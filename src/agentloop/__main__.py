"""`python -m agentloop` is the `agentloop` command."""

from .cli import main

raise SystemExit(main())
