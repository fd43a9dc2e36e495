"""Stdio "servers" that misbehave, for the fault tests: `python bad_servers.py MODE`.

- `silent`: reads its stdin and never answers (never initializes);
- `garbage`: answers every line with a line that is not JSON-RPC;
- `flood`: writes bytes without a newline, without end;
- `crash`: writes a reason to stderr and exits with code 3.
"""

from __future__ import annotations

import sys


def main() -> None:
    mode = sys.argv[1]
    if mode == "silent":
        for _ in sys.stdin:
            pass
    elif mode == "garbage":
        for _ in sys.stdin:
            sys.stdout.write("this is not JSON-RPC {\n")
            sys.stdout.flush()
    elif mode == "flood":
        chunk = "y" * 65536
        while True:
            sys.stdout.write(chunk)
            sys.stdout.flush()
    elif mode == "crash":
        sys.stderr.write("fatal: the database is gone\n")
        sys.exit(3)


if __name__ == "__main__":
    main()
