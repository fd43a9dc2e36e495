// The run's tasks as a live Gantt chart and a table: one lane per task, a grey bar while it
// waits (for its inputs, a worker, or a person's approval: violet), a coloured bar for each
// attempt (amber for one that failed and was retried). Built from the run's events (the service
// replays them from the first, so a reload redraws the whole history), seeded from the run's
// `tasks` for what the events do not show.
"use strict";

import { el, seconds, show, truncate } from "./dom.js";

const END_OF_TASK = {
  task_completed: "completed", task_failed: "failed",
  task_cancelled: "cancelled", task_timed_out: "timed_out",
};
const TERMINAL = new Set(["completed", "failed", "cancelled", "timed_out"]);
const COLUMNS = ["id", "target", "status", "attempt", "duration", "outcome"];
const PREVIEW_CELL = 90; // characters of a result or error shown in the table before "more"

export class Gantt {
  /** Draws into `lanes`, `axis` (the timeline), `tbody` (the table) and `counts`. */
  constructor({ lanes, axis, tbody, counts }) {
    this.nodes = { lanes, axis, tbody, counts };
    this.tasks = new Map(); // task id -> {id, target, status, attempt, submitted, started, ended, segments, ...}
    this.t0 = null; // when the run started (server clock, epoch seconds)
    this.endedAt = null; // when it ended, once it has
  }

  /** One task event of the run (`kind` is the event's kind, `info` its `task_event`). */
  onTask(kind, info, at) {
    let task = this.tasks.get(info.task_id);
    if (task && task.seeded) { // the events tell its story from the start: they replace the seed
      this.reset(task, at);
    } else if (!task) {
      task = this.add(info.task_id, info.target, at);
    }
    task.status = info.status;
    task.attempt = info.attempt;
    const open = task.segments.length ? task.segments[task.segments.length - 1] : null;
    if (kind === "approval_requested") {
      task.segments.push({ from: at, to: null, kind: "approval" });
    } else if (kind === "task_started") {
      if (open && open.to === null) open.to = at; // the approval it waited for was given
      if (task.started === null) task.started = at;
      task.segments.push({ from: at, to: null, kind: "run" });
    } else if (kind === "task_retried") {
      // The attempt failed; the next one runs after its backoff, with no start event of its own.
      if (open && open.to === null) { open.to = at; open.kind = "retry"; }
      task.segments.push({ from: at, to: null, kind: "run" });
      task.error = info.error;
    } else if (kind === "task_progress" && info.progress) {
      const p = info.progress; // how far an MCP server says the call got
      task.progress = `${p.progress}${p.total ? "/" + p.total : ""}${p.message ? ": " + p.message : ""}`;
    } else if (kind in END_OF_TASK) {
      if (open && open.to === null) open.to = at;
      task.ended = at;
      task.error = info.error ?? null;
      task.preview = info.preview ?? null;
    }
    this.update(task);
  }

  /** The run's `tasks` (from `GET /api/runs/{id}`): adds those no event showed yet, and the
   * details (arguments, preview) events do not carry. */
  seed(tasks) {
    for (const info of tasks || []) {
      let task = this.tasks.get(info.task_id);
      if (!task) {
        const from = info.submitted_at ?? info.started_at ?? info.ended_at ?? this.t0;
        if (from === null || from === undefined) continue;
        task = this.add(info.task_id, info.target, from);
        task.seeded = true;
        task.status = info.status;
        task.attempt = info.attempt ?? 0;
        if (info.started_at !== null && info.started_at !== undefined) {
          task.started = info.started_at;
          task.segments.push({ from: info.started_at, to: info.ended_at ?? null, kind: "run" });
        }
        task.ended = info.ended_at ?? null;
        task.error = info.error ?? null;
      }
      if (info.preview !== undefined && info.preview !== null) task.preview = info.preview;
      if (info.arguments !== undefined) task.arguments = info.arguments;
      this.update(task);
    }
  }

  /** The run ended at `at`: a task still waiting or running was cancelled with it. */
  end(at) {
    this.endedAt = at;
    for (const task of this.tasks.values()) {
      if (TERMINAL.has(task.status)) continue;
      for (const segment of task.segments) if (segment.to === null) segment.to = at;
      task.status = "cancelled";
      task.ended = at;
      task.error = task.error || "cancelled: the run ended while this task was in flight";
      this.update(task);
    }
  }

  add(id, target, at) {
    const task = {
      id, target, submitted: at, started: null, ended: null, segments: [],
      status: "pending", attempt: 0, error: null, preview: null, arguments: undefined,
      progress: null, seeded: false,
    };
    this.tasks.set(id, task);
    this.addRow(task);
    return task;
  }

  reset(task, at) {
    Object.assign(task, {
      submitted: at, started: null, ended: null, segments: [], seeded: false, progress: null,
    });
  }

  addRow(task) {
    const row = el("tr");
    row.dataset.taskId = task.id;
    task.cells = COLUMNS.map((name) => row.appendChild(el("td", "col-" + name)));
    task.cells[0].textContent = task.id;
    task.cells[1].textContent = task.target;
    task.row = row;
    this.nodes.tbody.append(row);

    const lane = el("div", "lane");
    lane.dataset.taskId = task.id;
    const label = el("span", "lane-label", task.id);
    label.title = `${task.id} → ${task.target}`;
    lane.append(label);
    task.track = el("div", "track");
    lane.append(task.track);
    this.nodes.lanes.append(lane);
  }

  update(task) {
    task.row.dataset.status = task.status;
    const progress = task.status === "running" && task.progress ? " " + task.progress : "";
    task.cells[2].textContent = task.status.replace("_", " ") + progress.slice(0, 60);
    task.cells[2].className = "col-status status-" + task.status;
    task.cells[3].textContent = String(task.attempt);
    task.track.dataset.status = task.status;
    const outcome = task.error ? { text: task.error, cls: "error" }
      : task.preview ? { text: task.preview, cls: "preview" } : null;
    task.cells[5].replaceChildren(...details(outcome, task.arguments));
    task.row.title = task.error || task.preview || "";
  }

  /** Redraws every bar at `now` (server clock): ten times a second while the run is live. */
  draw(now) {
    if (this.t0 === null) return;
    let last = this.endedAt ?? now;
    for (const task of this.tasks.values()) if (task.ended !== null) last = Math.max(last, task.ended);
    const span = Math.max(last - this.t0, 0.001);
    const pct = (t) => ((t - this.t0) / span) * 100 + "%";
    const width = (a, b) => (Math.max(b - a, 0) / span) * 100 + "%";
    let done = 0;
    for (const task of this.tasks.values()) {
      const end = task.ended !== null ? task.ended : last;
      task.cells[4].textContent = task.started === null ? "" : seconds(end - task.started);
      if (task.ended !== null) done += 1;
      const first = task.segments.length ? task.segments[0].from : end;
      const wait = el("div", "bar wait");
      wait.style.left = pct(task.submitted);
      wait.style.width = width(task.submitted, first);
      const bars = [wait];
      for (const segment of task.segments) {
        const to = segment.to !== null ? segment.to : last;
        const kind = segment.kind === "run" ? "run status-" + task.status : segment.kind;
        const bar = el("div", "bar " + kind);
        bar.style.left = pct(segment.from);
        bar.style.width = width(segment.from, to);
        bars.push(bar);
      }
      task.track.replaceChildren(...bars);
    }
    const size = this.tasks.size;
    this.nodes.counts.textContent = size ? `(${done} of ${size} done)` : "";
    this.drawAxis(span);
  }

  drawAxis(span) {
    const steps = [0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600, 7200];
    const step = steps.find((s) => span / s <= 10) || 14400;
    const ticks = [];
    for (let t = 0; t <= span + 1e-9; t += step) {
      const tick = el("span", "tick", (step < 1 ? t.toFixed(1) : String(Math.round(t))) + " s");
      tick.style.left = (t / span) * 100 + "%";
      if (t > 0 && t / span > 0.92) tick.classList.add("end"); // keep the last label inside
      ticks.push(tick);
    }
    this.nodes.axis.replaceChildren(...ticks);
  }
}

/** The outcome cell: the start of the result or error, the whole of it (and the task's
 * arguments, when the run's record has them) behind a disclosure. */
function details(outcome, args) {
  const hasArgs = args !== undefined && args !== null;
  if (!outcome && !hasArgs) return [];
  const text = outcome ? outcome.text : "";
  if (!hasArgs && text.length <= PREVIEW_CELL) return [el("span", outcome.cls, text)];
  const box = el("details", "outcome");
  box.append(el("summary", outcome ? outcome.cls : "muted", truncate(text || "arguments", PREVIEW_CELL)));
  if (hasArgs) {
    box.append(el("div", "label", "arguments"), el("pre", "arguments", show(args)));
  }
  if (outcome) {
    box.append(el("div", "label", outcome.cls === "error" ? "error" : "result"),
      el("pre", outcome.cls, text));
  }
  return [box];
}
