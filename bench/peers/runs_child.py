"""`python -m bench.peers.runs_child SYSTEM CASE`: measure one W6 cell in this fresh process
and print it as JSON (its own module, so that `-m` does not import `bench.peers.runs` twice)."""

import sys

from .runs import child

sys.exit(child(sys.argv[1:]))
