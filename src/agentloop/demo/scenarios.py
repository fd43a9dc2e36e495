"""The demo's four scenarios, each with tools and a scripted plan.

Tools are built fresh for every run (their transient failures are per run), and every plan is
the code a good model writes with the task tools: submit everything independent first, chain
dependent steps with `{"$result_of": id}`, wait once, then merge.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .work import Flaky, cpu_wait, io_wait, jitter

__all__ = ["SCENARIOS", "Scenario"]

Toolbox = tuple[list[Any], list[Any]]
"""(tools, managed agents) for one run."""


@dataclass(frozen=True, kw_only=True)
class Scenario:
    name: str
    title: str
    task: str
    build: Callable[[], Toolbox]
    plan: list[str]
    max_workers: int
    alternative: tuple[str, list[str]] | None = None
    """Another plan for the same work, run afterwards for comparison: (label, steps)."""
    needs_approval: frozenset[str] = frozenset()
    """Targets whose calls wait for approval; the demo's scripted reviewer approves them."""
    review_seconds: float = 0.0
    """The reviewer's simulated reading time per request, once the request is shown."""


# -- 1. batch processing: 10 files x clean -> analyse -> chart -----------------------------------

FILES = [f"data/sales_{i:02d}.csv" for i in range(1, 11)]
# Uneven on purpose: each stage has one slow file, and it is a different file each time.
SLOW = {"clean": "data/sales_03.csv", "analyse": "data/sales_07.csv", "chart": "data/sales_05.csv"}
BASE = {"clean": 0.25, "analyse": 0.35, "chart": 0.2}
SLOW_SECONDS = {"clean": 1.2, "analyse": 1.2, "chart": 1.0}


def stage_seconds(stage: str, path: str) -> float:
    if path == SLOW[stage]:
        return SLOW_SECONDS[stage]
    return BASE[stage] + jitter(stage + path)


def _batch_tools() -> Toolbox:
    flaky = Flaky(lambda key: ConnectionError(f"chart service busy while rendering {key}"))

    async def clean_file(path: str) -> dict[str, Any]:
        """Load a CSV file and clean it: drop bad rows, normalise columns (I/O bound)."""
        await io_wait(stage_seconds("clean", path))
        return {"path": path, "rows": 1000 + len(path) * 7}

    def analyze_data(data: dict[str, Any]) -> dict[str, Any]:
        """Compute statistics of cleaned data (CPU bound; runs in a worker thread)."""
        cpu_wait(stage_seconds("analyse", data["path"]))
        return {"path": data["path"], "mean": round(data["rows"] / 97, 2)}

    async def make_chart(stats: dict[str, Any]) -> str:
        """Render a chart of the statistics and return its file name."""
        await io_wait(stage_seconds("chart", stats["path"]))
        if stats["path"] == "data/sales_09.csv":
            flaky.check(stats["path"])
        path = str(stats["path"])
        return path.replace("data/", "charts/").replace(".csv", ".png")

    return [clean_file, analyze_data, make_chart], []


BATCH_PIPELINED = [
    """Thought: The 10 files are independent, and each goes clean -> analyse -> chart. I will
chain each file's three steps with result references, so a file moves on as soon as its own
previous step is done, and wait once at the end.
<code>
files = [f"data/sales_{i:02d}.csv" for i in range(1, 11)]
charts = []
for path in files:
    cleaned = submit_task("tool", "clean_file", {"path": path})
    stats = submit_task("tool", "analyze_data", {"data": {"$result_of": cleaned}})
    charts.append(submit_task("tool", "make_chart", {"stats": {"$result_of": stats}}, retries=2))
outcome = wait_for_tasks(charts, max_wait_time=120)
print(outcome)
</code>""",
    """Thought: All pipelines finished; I will collect the charts and report.
<code>
results = get_task_results(charts)
done = [chart for chart in results.values() if chart]
final_answer(f"{len(done)} of {len(files)} files cleaned, analysed and charted: " + ", ".join(done))
</code>""",
]

BATCH_STAGED = [
    """Thought: First clean all 10 files in parallel, then analyse, then chart.
<code>
files = [f"data/sales_{i:02d}.csv" for i in range(1, 11)]
cleaned = [submit_task("tool", "clean_file", {"path": p}) for p in files]
print(wait_for_tasks(cleaned, max_wait_time=120))
cleaned_data = get_task_results(cleaned)
</code>""",
    """Thought: Cleaning is done. Now analyse every file in parallel.
<code>
stats = [submit_task("tool", "analyze_data", {"data": cleaned_data[c]}) for c in cleaned]
print(wait_for_tasks(stats, max_wait_time=120))
stats_data = get_task_results(stats)
</code>""",
    """Thought: Now chart every file in parallel.
<code>
charts = [submit_task("tool", "make_chart", {"stats": stats_data[s]}, retries=2) for s in stats]
print(wait_for_tasks(charts, max_wait_time=120))
results = get_task_results(charts)
</code>""",
    """<code>
done = [chart for chart in results.values() if chart]
final_answer(f"{len(done)} of {len(files)} files cleaned, analysed and charted: " + ", ".join(done))
</code>""",
]

# -- 2. multi-source integration ---------------------------------------------------------------


def _sources_tools() -> Toolbox:
    flaky = Flaky(lambda key: ConnectionError(f"HTTP 503 from {key}: try again"))

    def query_database(database: str, table: str) -> dict[str, Any]:
        """Run a query on one of the databases (sync driver; runs in a worker thread)."""
        cpu_wait({"A": 0.9, "B": 0.7}.get(database, 0.5))
        return {
            "source": f"database {database}",
            "table": table,
            "rows": 4200 if database == "A" else 18500,
        }

    async def fetch_api(endpoint: str) -> dict[str, Any]:
        """Call the real-time market data API (flaky: the first call fails)."""
        await io_wait(0.5)
        flaky.check(endpoint)
        return {"source": f"API {endpoint}", "quotes": 312}

    def read_file(path: str) -> dict[str, Any]:
        """Read a historical data file."""
        cpu_wait(0.4)
        return {"source": f"file {path}", "years": 5}

    async def integrate_data(
        users: dict[str, Any],
        transactions: dict[str, Any],
        market: dict[str, Any],
        history: dict[str, Any],
    ) -> str:
        """Join the four sources into one report."""
        await io_wait(0.3)
        parts = [users, transactions, market, history]
        return "integrated report from " + ", ".join(str(p["source"]) for p in parts)

    return [query_database, fetch_api, read_file, integrate_data], []


SOURCES_PLAN = [
    """Thought: The four sources are independent: fetch them all at once (the API is flaky, so
allow retries), and let the integration start by itself when all four are in.
<code>
users = submit_task("tool", "query_database", {"database": "A", "table": "users"})
transactions = submit_task("tool", "query_database", {"database": "B", "table": "transactions"})
market = submit_task("tool", "fetch_api", {"endpoint": "C/market"}, retries=2)
history = submit_task("tool", "read_file", {"path": "D/history.parquet"})
report = submit_task("tool", "integrate_data", {
    "users": {"$result_of": users}, "transactions": {"$result_of": transactions},
    "market": {"$result_of": market}, "history": {"$result_of": history},
})
print(wait_for_tasks([report], max_wait_time=60))
final_answer(get_task_results([report])[report])
</code>""",
]

# -- 3. composite e-commerce analysis with a managed ML expert -----------------------------------


def _ecommerce_tools() -> Toolbox:
    from smolagents import CodeAgent, tool

    from ..testing import ScriptedModel

    @tool  # type: ignore[untyped-decorator]
    def train_model(features: str) -> str:
        """Train a user-behaviour model.

        Args:
            features: which features to use.
        """
        cpu_wait(1.0)
        return f"gradient-boosted model on {features}: AUC 0.87"

    expert = CodeAgent(
        tools=[train_model],
        model=ScriptedModel(
            [
                'model = train_model(features="sessions, carts, returns")\n'
                'final_answer(f"Users who return items twice churn 3x more ({model}).")'
            ]
        ),
        name="ml_expert",
        description="A machine-learning expert: models user behaviour from raw events.",
        max_steps=3,
        verbosity_level=-1,
    )

    async def analyze_sales_trends(period: str) -> str:
        """Sales trend analysis for a period."""
        await io_wait(0.8)
        return f"sales up 12% in {period}, driven by mobile"

    def optimize_inventory(warehouse: str) -> str:
        """Inventory optimisation for a warehouse: changes its stock levels, so a person approves
        each call first (solver; runs in a worker thread)."""
        cpu_wait(0.7)
        return f"{warehouse}: cut safety stock of 140 slow SKUs"

    async def research_competitors(market: str) -> str:
        """Competitor research for a market."""
        await io_wait(0.9)
        return f"{market}: two rivals started free shipping"

    async def write_strategy_report(findings: list[str]) -> str:
        """Write the strategy report from all findings."""
        await io_wait(0.3)
        return "STRATEGY: " + " | ".join(findings)

    return [
        analyze_sales_trends,
        optimize_inventory,
        research_competitors,
        write_strategy_report,
    ], [expert]


ECOMMERCE_PLAN = [
    """Thought: Analyses 1-4 are independent; user behaviour needs the ML expert. Start all four,
and let the strategy report start when they are done.
<code>
ask = "Find which user behaviour predicts churn, from sessions, carts and returns."
behaviour = submit_task("managed_agent", "ml_expert", {"task": ask})
trends = submit_task("tool", "analyze_sales_trends", {"period": "last quarter"})
inventory = submit_task("tool", "optimize_inventory", {"warehouse": "EU-1"})
rivals = submit_task("tool", "research_competitors", {"market": "EU"})
findings = [{"$result_of": t} for t in (behaviour, trends, inventory, rivals)]
report = submit_task("tool", "write_strategy_report", {"findings": findings})
print(wait_for_tasks([report], max_wait_time=60))
final_answer(get_task_results([report])[report])
</code>""",
]

# -- 4. quarterly report in three dimensions ----------------------------------------------------


def _quarterly_tools() -> Toolbox:
    async def analyze_sales(quarter: str) -> str:
        """Sales analysis for a quarter."""
        await io_wait(0.9)
        return f"{quarter} revenue 4.2M (+8%)"

    async def analyze_market(quarter: str) -> str:
        """Market analysis for a quarter."""
        await io_wait(0.7)
        return f"{quarter} market share 17% (+1 pt)"

    def analyze_operations(quarter: str) -> str:
        """Operations analysis for a quarter (reads the ERP synchronously)."""
        cpu_wait(0.8)
        return f"{quarter} fulfilment time 1.9 days (-0.3)"

    return [analyze_sales, analyze_market, analyze_operations], []


QUARTERLY_PLAN = [
    """Thought: Sales, market and operations are three independent analyses: run them in parallel.
<code>
sales_task = submit_task("tool", "analyze_sales", {"quarter": "Q1"})
market_task = submit_task("tool", "analyze_market", {"quarter": "Q1"})
ops_task = submit_task("tool", "analyze_operations", {"quarter": "Q1"})
wait_for_tasks([sales_task, market_task, ops_task], max_wait_time=60)
results = get_task_results([sales_task, market_task, ops_task])
</code>""",
    """Thought: For the comparison I need one more figure before I can write: call it directly.
<code>
sales, market, ops = results[sales_task], results[market_task], results[ops_task]
previous = analyze_market(quarter="Q4")  # one result, needed now: a direct call
final_answer(f"Q1 report. Sales: {sales}. Market: {market} (Q4: {previous}). Operations: {ops}.")
</code>""",
]

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            name="batch",
            title="Batch processing: 10 files x (clean -> analyse -> chart)",
            task="I have 10 data files to process; each needs cleaning, statistical analysis and "
            "a chart. Optimise the flow to cut the total time.",
            build=_batch_tools,
            plan=BATCH_PIPELINED,
            max_workers=10,
            alternative=("stage-by-stage", BATCH_STAGED),
        ),
        Scenario(
            name="sources",
            title="Multi-source integration: database A, database B, API C, file D",
            task="Fetch user info (database A), transactions (database B), real-time market data "
            "(API C) and history (file D), and integrate them efficiently.",
            build=_sources_tools,
            plan=SOURCES_PLAN,
            max_workers=3,
        ),
        Scenario(
            name="ecommerce",
            title="Composite e-commerce analysis with a managed ML expert",
            task="Analyse our e-commerce platform: user behaviour (needs the ML expert), sales "
            "trends, inventory, competitors, then a strategy report.",
            build=_ecommerce_tools,
            plan=ECOMMERCE_PLAN,
            max_workers=3,
            needs_approval=frozenset({"optimize_inventory"}),
            review_seconds=0.3,
        ),
        Scenario(
            name="quarterly",
            title="Quarterly report: sales, market, operations",
            task="Analyse Q1 across sales, market and operations, and write the quarterly report.",
            build=_quarterly_tools,
            plan=QUARTERLY_PLAN,
            max_workers=3,
        ),
    )
}
