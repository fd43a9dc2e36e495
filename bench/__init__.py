"""agentloop's benchmarks: `python -m bench [--quick] [--only NAME|core|peers] [--json PATH]
[--chart PNG]`.

Each scenario measures its floor (bare asyncio or anyio doing the same work) in the same run and
reports the ratio, because absolute timings on a shared, noisy machine mean little. Benchmarks
report; they never fail the build.
"""

import os

# Importing agentloop pulls in litellm (through smolagents); keep it from fetching a cost map.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
