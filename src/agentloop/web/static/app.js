// The live web view: starts a run, reads its server-sent events (agentloop.asgi), and draws
// the tasks (a table and a timeline), the model steps and the answer as they arrive.
// Plain JS, no build step, no dependencies. Everything the run sends is shown as text
// (textContent), never as HTML: model-written code and tool results are untrusted.
"use strict";

const KINDS = [
  "run_started", "model_delta", "step", "task_submitted", "task_started", "task_retried", "task_completed",
  "task_failed", "task_cancelled", "task_timed_out", "task_progress", "approval_requested",
  "events_dropped", "final_answer", "run_failed",
];
const END_OF_TASK = {
  task_completed: "completed", task_failed: "failed",
  task_cancelled: "cancelled", task_timed_out: "timed_out",
};

const $ = (id) => document.getElementById(id);
const el = (tag, cls, text) => {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
};

let run = null; // the run on screen: see newRun()

function newRun() {
  return {
    source: null, ended: false, runId: "", t0: null,
    lastAt: null, lastSeen: 0, // the server clock at the last event, and when it arrived here
    tasks: new Map(), // id -> {id, target, status, attempt, submitted, started, ended, segments, row, lane}
    dropped: 0, frame: 0,
  };
}

function serverNow() {
  if (run.lastAt === null) return 0;
  return run.ended ? run.lastAt : run.lastAt + (performance.now() - run.lastSeen) / 1000;
}

function seconds(value) {
  return value < 10 ? value.toFixed(2) + " s" : value.toFixed(1) + " s";
}

// -- the form -------------------------------------------------------------------------------

async function loadScenarios() {
  const select = $("scenario");
  const reply = await fetch("scenarios");
  const scenarios = await reply.json();
  for (const s of scenarios) {
    const option = el("option", "", s.title === s.name ? s.name : `${s.name}: ${s.title}`);
    option.value = s.name;
    option.dataset.task = s.task;
    select.append(option);
  }
  const showTask = () => {
    const option = select.selectedOptions[0];
    $("task").placeholder = (option && option.dataset.task) || "what the agent should do";
  };
  select.addEventListener("change", showTask);
  showTask();
  $("start").disabled = false;
}

function start(event) {
  event.preventDefault();
  stop(false);
  resetView();
  run = newRun();
  const query = new URLSearchParams({ scenario: $("scenario").value, task: $("task").value });
  const source = new EventSource("runs/stream?" + query.toString());
  run.source = source;
  for (const kind of KINDS) {
    source.addEventListener(kind, (message) => receive(kind, JSON.parse(message.data)));
  }
  // The server ends the stream after the final event; EventSource would then reconnect, and
  // a reconnect is a new GET, i.e. a new run: close it on any error instead.
  source.onerror = () => {
    if (!run.ended) {
      setStatus("failed", run.t0 === null
        ? "The server refused the run or could not be reached (see its log)."
        : "The connection to the server was lost; the run was cancelled.");
    }
    finish();
  };
  setStatus("running", "Starting…");
  $("start").disabled = true;
  $("stop").disabled = false;
  tick();
}

function stop(byUser) {
  if (!run || run.ended) return;
  run.ended = true;
  if (run.source) run.source.close(); // the server sees the disconnect and cancels the run
  if (byUser) setStatus("stopped", "Stopped: the run and its tasks were cancelled.");
  finish();
}

function finish() {
  run.ended = true;
  if (run.source) run.source.close();
  cancelAnimationFrame(run.frame);
  $("start").disabled = false;
  $("stop").disabled = true;
  draw();
}

function resetView() {
  $("tasks").tBodies[0].replaceChildren();
  $("lanes").replaceChildren();
  $("axis").replaceChildren();
  $("steps").replaceChildren();
  $("answer").textContent = "";
  $("answer").dataset.state = "";
  $("answer-box").hidden = true;
  $("counts").textContent = "";
  $("notice").hidden = true;
}

function setStatus(state, text) {
  const status = $("status");
  status.dataset.state = state;
  status.textContent = text;
}

// -- events ---------------------------------------------------------------------------------

function receive(kind, data) {
  run.lastAt = data.at;
  run.lastSeen = performance.now();
  if (run.t0 === null) run.t0 = data.at;
  if (kind === "run_started") {
    run.runId = data.run_id;
    setStatus("running", `Running ${data.run_id}: ${data.task}`);
  } else if (kind === "model_delta") {
    addWords(data.step, data.text);
  } else if (kind === "step") {
    addStep(data.step);
  } else if (kind === "events_dropped") {
    run.dropped = data.dropped;
  } else if (kind === "final_answer") {
    showEnd("done", "Final answer", typeof data.answer === "string"
      ? data.answer : JSON.stringify(data.answer, null, 2));
    setStatus("done", `Finished ${run.runId} in ${seconds(data.at - run.t0)}.`);
    finish();
  } else if (kind === "run_failed") {
    showEnd("failed", "The run failed", data.error || "unknown error");
    setStatus("failed", `${run.runId} failed after ${seconds(data.at - run.t0)}.`);
    finish();
  } else if (data.task_event) {
    onTask(kind, data.task_event, data.at);
  }
}

function onTask(kind, info, at) {
  let task = run.tasks.get(info.task_id);
  if (!task) {
    task = {
      id: info.task_id, target: info.target, submitted: at, started: null, ended: null,
      segments: [], status: "pending", attempt: 0, error: null,
    };
    run.tasks.set(task.id, task);
    addRow(task);
  }
  task.status = info.status;
  task.attempt = info.attempt;
  const open = task.segments.length ? task.segments[task.segments.length - 1] : null;
  if (kind === "task_started") {
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
    task.error = info.error;
    task.preview = info.preview;
  }
  updateRow(task);
}

// -- drawing --------------------------------------------------------------------------------

function addRow(task) {
  const row = el("tr");
  row.dataset.taskId = task.id;
  task.cells = ["id", "target", "status", "attempt", "duration"].map((name) => {
    const cell = el("td", "col-" + name);
    row.append(cell);
    return cell;
  });
  task.cells[0].textContent = task.id;
  task.cells[1].textContent = task.target;
  task.row = row;
  $("tasks").tBodies[0].append(row);

  const lane = el("div", "lane");
  lane.append(el("span", "lane-label", task.id));
  const track = el("div", "track");
  lane.append(track);
  task.track = track;
  $("lanes").append(lane);
}

function updateRow(task) {
  task.row.dataset.status = task.status;
  const progress = task.status === "running" && task.progress ? " " + task.progress : "";
  task.cells[2].textContent = task.status.replace("_", " ") + progress.slice(0, 60);
  task.cells[2].className = "col-status status-" + task.status;
  task.cells[3].textContent = String(task.attempt);
  task.row.title = task.error || task.preview || "";
  task.track.dataset.status = task.status;
}

function duration(task) {
  if (task.started === null) return null;
  return (task.ended !== null ? task.ended : serverNow()) - task.started;
}

function draw() {
  if (!run || run.t0 === null) return;
  const now = serverNow();
  let last = now;
  for (const task of run.tasks.values()) if (task.ended !== null) last = Math.max(last, task.ended);
  const span = Math.max(last - run.t0, 0.001);
  const pct = (t) => ((t - run.t0) / span) * 100 + "%";
  const width = (a, b) => (Math.max(b - a, 0) / span) * 100 + "%";
  let done = 0;
  for (const task of run.tasks.values()) {
    const d = duration(task);
    task.cells[4].textContent = d === null ? "" : seconds(d);
    if (task.ended !== null) done += 1;
    const bars = [];
    const waitEnd = task.started !== null ? task.started : (task.ended !== null ? task.ended : now);
    const wait = el("div", "bar wait");
    wait.style.left = pct(task.submitted);
    wait.style.width = width(task.submitted, waitEnd);
    bars.push(wait);
    for (const segment of task.segments) {
      const to = segment.to !== null ? segment.to : now;
      const kind = segment.kind === "retry" ? "retry" : "run status-" + task.status;
      const bar = el("div", "bar " + kind);
      bar.style.left = pct(segment.from);
      bar.style.width = width(segment.from, to);
      bars.push(bar);
    }
    task.track.replaceChildren(...bars);
  }
  $("counts").textContent = run.tasks.size ? `(${done} of ${run.tasks.size} done)` : "";
  drawAxis(span);
  const notice = $("notice");
  notice.hidden = !run.dropped;
  notice.textContent = run.dropped
    ? `${run.dropped} events were dropped: the page fell behind, so this view has gaps.` : "";
}

function drawAxis(span) {
  const steps = [0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600];
  const step = steps.find((s) => span / s <= 10) || 1200;
  const ticks = [];
  for (let t = 0; t <= span + 1e-9; t += step) {
    const tick = el("span", "tick", (step < 1 ? t.toFixed(1) : String(Math.round(t))) + " s");
    tick.style.left = (t / span) * 100 + "%";
    if (t > 0 && t / span > 0.92) tick.classList.add("end"); // keep the last label inside
    ticks.push(tick);
  }
  $("axis").replaceChildren(...ticks);
}

const FRAME_MS = 100; // redraw running bars ten times a second, not at every frame

function tick(time) {
  if (time === undefined || time - (run.drawn || 0) >= FRAME_MS) {
    run.drawn = time || 0;
    draw();
  }
  if (!run.ended) run.frame = requestAnimationFrame(tick);
}

// The model's words as it writes them, in the step they belong to; the step's own event
// replaces them with the code and what it printed.
function addWords(number, text) {
  let item = $("writing");
  if (!item || item.dataset.step !== String(number)) {
    if (item) item.remove();
    item = el("li", "step writing");
    item.id = "writing";
    item.dataset.step = String(number);
    item.append(el("div", "step-head", `step ${number} · writing…`), el("pre", "words", ""));
    $("steps").append(item);
  }
  item.querySelector("pre").textContent += text;
}

function addStep(step) {
  const writing = $("writing");
  if (writing) writing.remove();
  const item = el("li", "step");
  const facts = [`step ${step.number}`];
  if (step.duration !== null && step.duration !== undefined) facts.push(seconds(step.duration));
  if (step.input_tokens !== null && step.input_tokens !== undefined) {
    facts.push(`${step.input_tokens} in / ${step.output_tokens} out tokens`);
  }
  item.append(el("div", "step-head", facts.join(" · ")));
  if (step.code) item.append(el("pre", "code", step.code));
  if (step.error) item.append(el("pre", "observation error", step.error));
  else if (step.observation) item.append(el("pre", "observation", step.observation));
  if (!step.code && !step.error && !step.observation) {
    item.append(el("div", "muted", "no code: the model's reply ended the run (see below)"));
  }
  $("steps").append(item);
}

function showEnd(state, title, text) {
  $("answer-title").textContent = title;
  $("answer").textContent = text;
  $("answer").dataset.state = state;
  $("answer-box").hidden = false;
  $("answer-box").dataset.state = state;
}

document.addEventListener("DOMContentLoaded", () => {
  $("run-form").addEventListener("submit", start);
  $("stop").addEventListener("click", () => stop(true));
  loadScenarios().catch((error) => setStatus("failed", "Could not load the scenarios: " + error));
});
