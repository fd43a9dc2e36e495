"""Basic usage: a CodeAgent that plans and runs its own parallel work.

This is the guide's "basic usage", unchanged apart from two things:

* the import line (`from agentloop import create_async_agent`);
* the model. A real application passes a smolagents model, for example::

      model = LiteLLMModel(
          model_id="litellm_proxy/gpt-3.5-turbo",
          api_key=os.getenv("API_KEY"),
          base_url=os.getenv("BASE_URL"),
          max_completion_tokens=8192,
      )

  Here a `ScriptedModel` plays the LLM instead, so the example runs offline, without an API key,
  and does the same thing every time. Its replies are the code a good model writes for this task.

Run it with `python examples/basic_usage.py`.
"""

from __future__ import annotations

import json
import time

from agentloop import create_async_agent
from agentloop.testing import ScriptedModel

# -- the tools the agent can run in the background ------------------------------------------------

_DATASETS = {
    "sales_2023": (0.4, 12_840, 3),
    "sales_2024": (0.5, 15_112, 1),
    "web_traffic": (0.3, 98_205, 7),
    "support_tickets": (0.2, 4_310, 0),
    "inventory": (0.3, 2_975, 2),
}
"""name -> (seconds the analysis takes, rows, anomalies): stand-ins for real work."""


def analyze_dataset(name: str) -> str:
    """Analyse one dataset and report its size and anomalies (slow, blocking work).

    Args:
        name: the dataset's name, e.g. "sales_2023".
    """
    seconds, rows, anomalies = _DATASETS[name]
    time.sleep(seconds)  # a real analysis takes 3-5 s; shortened so the example runs quickly
    return f"{name}: {rows} rows, {anomalies} anomalies"


def write_report(findings: list) -> str:
    """Merge per-dataset findings into one report.

    Args:
        findings: one line per analysed dataset.
    """
    time.sleep(0.1)
    return "Report\n" + "\n".join(f"- {line}" for line in sorted(findings))


# -- the model ------------------------------------------------------------------------------------

# NOT an LLM: a ScriptedModel replies with these steps in order (one per controller turn), so
# the example is deterministic. Each step is the Python code the controller runs; the task tools
# (submit_task, wait_for_tasks, get_task_results, ...) are what an LLM would call as well.
SCRIPT = [
    # Turn 1: the five analyses are independent, so submit them all before waiting on any.
    """
datasets = ["sales_2023", "sales_2024", "web_traffic", "support_tickets", "inventory"]
task_ids = [submit_task("tool", "analyze_dataset", {"name": name}) for name in datasets]
outcome = wait_for_tasks(task_ids, max_wait_time=30)
print(outcome)
results = get_task_results(task_ids)
failed = [task_id for task_id, value in results.items() if not value]
print("failed:", failed)
""",
    # Turn 2: having seen the observation, merge the findings and answer.
    """
findings = [str(results[task_id]) for task_id in task_ids if results[task_id]]
report_id = submit_task("tool", "write_report", {"findings": findings})
wait_for_tasks([report_id], max_wait_time=30)
final_answer(get_task_results([report_id])[report_id])
""",
]


def main() -> None:
    model = ScriptedModel(SCRIPT)

    async_agent = create_async_agent(
        tools=[analyze_dataset, write_report],
        model=model,
        max_workers=3,
    )

    # Let the agent work out the parallel plan on its own.
    started = time.perf_counter()
    result = async_agent.run_with_async_guidance("""
I need to analyse 5 datasets (sales_2023, sales_2024, web_traffic, support_tickets,
inventory); each analysis takes 3-5 seconds. Please design an efficient parallel plan,
then merge the findings into one report.
""")
    elapsed = time.perf_counter() - started

    print(result)
    print(f"finished in {elapsed:.2f}s")
    # Live counters of the agent's task manager (the same numbers a /stats endpoint would show).
    stats = async_agent.task_manager.get_statistics()
    print("statistics:", json.dumps(stats, sort_keys=True))

    async_agent.shutdown()


if __name__ == "__main__":
    main()
