"""`python -m bench.durable_child SYSTEM CASE`: measure one cell of the durable benchmark in this
fresh process and print it as JSON (its own module, so that `-m` does not import
`bench.durable` twice)."""

import sys

from .durable import child

sys.exit(child(sys.argv[1:]))
