// The run list (`#/`): every run the caller may see, newest first, with filters by status and
// agent, refreshed every few seconds while it is shown; and the form that starts a run and
// then opens it.
"use strict";

import { getJson, postJson } from "./api.js";
import { $, age, el, holderText, truncate } from "./dom.js";

const REFRESH_MS = 3000;
const TASK_CHARS = 80;
const LIMIT = 100;
const COLUMNS = ["status", "agent", "task", "age", "holder", "steps", "approvals"];

export class RunList {
  /** `showError(message)` reports what the API refused; `agents` is `GET /api/agents`. */
  constructor({ showError }) {
    this.showError = showError;
    this.agents = [];
    this.timer = null;
    this.loading = null;
  }

  /** Fills the agent pickers (start form and filter) and wires the form and filters. */
  async init() {
    $("start-form").addEventListener("submit", (event) => this.start(event));
    for (const id of ["filter-status", "filter-agent"]) {
      $(id).addEventListener("change", () => this.refresh());
    }
    $("start-agent").addEventListener("change", () => this.showDefaultTask());
    this.agents = await getJson("api/agents");
    for (const agent of this.agents) {
      const label = agent.title && agent.title !== agent.name ? `${agent.name}: ${agent.title}` : agent.name;
      const option = el("option", "", label);
      option.value = agent.name;
      $("start-agent").append(option);
      const filter = el("option", "", agent.name);
      filter.value = agent.name;
      $("filter-agent").append(filter);
    }
    this.showDefaultTask();
    $("start").disabled = this.agents.length === 0;
  }

  defaultTask() {
    const agent = this.agents.find((a) => a.name === $("start-agent").value);
    return (agent && agent.task) || "";
  }

  showDefaultTask() {
    $("start-task").placeholder = this.defaultTask() || "what the agent should do";
  }

  /** Shown: refresh now and every few seconds until hidden. */
  show() {
    this.hide();
    this.refresh();
    this.timer = setInterval(() => this.refresh(), REFRESH_MS);
  }

  hide() {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  async refresh() {
    if (this.loading) return this.loading; // one request at a time
    const query = new URLSearchParams({ limit: String(LIMIT) });
    if ($("filter-status").value) query.set("status", $("filter-status").value);
    if ($("filter-agent").value) query.set("agent", $("filter-agent").value);
    this.loading = getJson("api/runs?" + query.toString())
      .then((body) => this.render(body.runs || []))
      .catch((error) => this.showError("Could not list the runs: " + error.message))
      .finally(() => { this.loading = null; });
    return this.loading;
  }

  render(runs) {
    const now = Date.now() / 1000;
    const rows = runs.map((run) => {
      const row = el("tr");
      row.dataset.runId = run.run_id;
      row.dataset.status = run.status;
      const link = el("a", "", truncate(run.task, TASK_CHARS));
      link.href = "#/runs/" + encodeURIComponent(run.run_id);
      link.title = `${run.run_id}\n${run.task}`;
      const values = {
        status: el("span", "badge status-" + run.status, run.status),
        agent: run.agent,
        task: link,
        age: age(run.started_at, now),
        holder: run.status === "running" || run.status === "parked" ? holderText(run.holder) : "—",
        steps: String(run.steps ?? 0),
        approvals: run.pending_approvals ? String(run.pending_approvals) : "",
      };
      for (const name of COLUMNS) {
        const cell = el("td", "col-" + name);
        const value = values[name];
        if (value instanceof Node) cell.append(value);
        else cell.textContent = value;
        row.append(cell);
      }
      row.cells[3].title = new Date(run.started_at * 1000).toLocaleString();
      if (run.pending_approvals) row.cells[6].classList.add("waiting");
      return row;
    });
    $("runs").tBodies[0].replaceChildren(...rows);
    $("runs-empty").hidden = runs.length > 0;
  }

  /** Starts a run in the background and opens its page. */
  async start(event) {
    event.preventDefault();
    const task = $("start-task").value.trim() || this.defaultTask();
    if (!task) {
      this.showError("Write a task for the agent (this agent has no default task).");
      return;
    }
    $("start").disabled = true;
    try {
      const body = await postJson("api/runs", { agent: $("start-agent").value, task });
      $("start-task").value = "";
      location.hash = "#/runs/" + encodeURIComponent(body.run.run_id);
    } catch (error) {
      this.showError("Could not start the run: " + error.message);
    } finally {
      $("start").disabled = false;
    }
  }
}
