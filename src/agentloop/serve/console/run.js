// One run's page (`#/runs/<id>`): its record (status, holder, tokens and cost), the live
// Gantt of its tasks, its model steps, the approvals it waits for (with Approve / Reject), the
// requests nested agents made, a Cancel button, and its answer or error.
//
// The events come from `api/runs/<id>/events` through the browser's EventSource: the service
// replays them from the first (so a reload shows the same history) and then sends the live
// ones; when the connection drops, EventSource reconnects with `Last-Event-ID` by itself and
// the page says so meanwhile. The stream is closed on the run's last event (`final_answer` or
// `run_failed`); an EventSource left open would reconnect to an ended stream forever.
"use strict";

import { getJson, postJson, seg } from "./api.js";
import { $, age, el, holderText, seconds, show, usd } from "./dom.js";
import { Gantt } from "./gantt.js";

const KINDS = [
  "run_started", "run_resumed", "model_delta", "step", "model_fallback", "model_retried",
  "task_submitted", "task_started", "task_retried", "task_completed", "task_failed",
  "task_cancelled", "task_timed_out", "task_progress", "approval_requested", "events_dropped",
  "run_parked", "final_answer", "run_failed",
];
const LIVE = new Set(["running", "parked"]);
const DECIDES = new Set(["task_started", "task_failed", "task_cancelled"]); // an approval's outcome
const FRAME_MS = 100; // redraw running bars ten times a second, not at every frame
const REFRESH_MS = 3000; // the run's record (status, holder, pending approvals) while it is live

export class RunPage {
  /** `showError(message)` reports what the API refused; `onEnd()` is told when a run ends. */
  constructor({ showError, onEnd }) {
    this.showError = showError;
    this.onEnd = onEnd;
    this.state = null;
    $("cancel").addEventListener("click", () => this.cancel());
  }

  /** Shows run `runId`: its record, then its events from the first. */
  open(runId) {
    this.close();
    const state = {
      runId, source: null, ended: false, endAt: null, lastAt: null, skew: Infinity,
      frame: 0, drawn: 0, timer: null, record: null, tokens: { in: 0, out: 0, calls: 0 },
      usage: null, requests: new Map(), pending: new Map(), cancelling: false,
      gantt: new Gantt({ lanes: $("lanes"), axis: $("axis"), tbody: $("tasks").tBodies[0], counts: $("counts") }),
    };
    this.state = state;
    this.reset(runId);
    this.refresh(state, true);
    this.listen(state);
    state.timer = setInterval(() => { if (!state.ended) this.refresh(state, false); }, REFRESH_MS);
    this.tick(state);
  }

  close() {
    const state = this.state;
    if (!state) return;
    if (state.source) state.source.close();
    clearInterval(state.timer);
    cancelAnimationFrame(state.frame);
    this.state = null;
  }

  reset(runId) {
    $("run-id").textContent = runId;
    for (const id of ["run-agent", "run-task", "run-facts", "usage", "answer", "counts", "notes"]) {
      $(id).replaceChildren();
    }
    for (const id of ["lanes", "axis", "steps", "approvals", "requests"]) $(id).replaceChildren();
    $("tasks").tBodies[0].replaceChildren();
    $("answer-box").hidden = true;
    $("approvals-box").hidden = true;
    $("requests-box").hidden = true;
    this.setStatus("loading");
    this.setStream("connecting", "Connecting to the run's events…");
    $("cancel").disabled = true;
  }

  // -- the run's record -------------------------------------------------------------------------

  async refresh(state, withTasks) {
    let record;
    try {
      record = (await getJson(`api/runs/${seg(state.runId)}`)).run;
    } catch (error) {
      if (this.state === state) this.showError(`Could not read run ${state.runId}: ${error.message}`);
      return;
    }
    if (this.state !== state) return;
    const before = state.record;
    state.record = record;
    if (state.gantt.t0 === null && typeof record.started_at === "number") state.gantt.t0 = record.started_at;
    if (withTasks || state.ended) state.gantt.seed(record.tasks);
    this.showRecord(state);
    const pendingChanged = !before || before.pending_approvals !== record.pending_approvals;
    if (pendingChanged || record.pending_approvals || state.pending.size) this.loadApprovals(state);
    const refused = state.source && state.source.readyState === EventSource.CLOSED;
    if (!LIVE.has(record.status) && !state.ended && refused) this.finish(state, null); // no events
  }

  showRecord(state) {
    const run = state.record;
    if (!run) return;
    const status = state.cancelling && LIVE.has(run.status) ? "cancelling" : run.status;
    this.setStatus(status);
    $("run-agent").textContent = run.agent;
    $("run-task").textContent = run.task;
    const facts = [`started ${age(run.started_at)} ago`];
    if (LIVE.has(run.status)) facts.push(`held by ${holderText(run.holder)}`);
    else if (typeof run.updated_at === "number") facts.push(`took ${seconds(run.updated_at - run.started_at)}`);
    facts.push(`${run.steps ?? 0} steps`);
    if (run.attempts > 1) facts.push(`${run.attempts} attempts`);
    if (run.principal) facts.push(`by ${run.principal}`);
    if (run.session_id) facts.push(`session ${run.session_id}`);
    $("run-facts").textContent = facts.join(" · ");
    $("cancel").disabled = !LIVE.has(run.status) || state.ended || state.cancelling;
    if (run.usage) state.usage = run.usage;
    this.showUsage(state);
    if (!LIVE.has(run.status)) {
      if (run.answer !== null && run.answer !== undefined && run.status === "completed") {
        this.showEnd("done", "Final answer", show(run.answer));
      } else if (run.error) {
        this.showEnd(run.status === "cancelled" ? "cancelled" : "failed",
          run.status === "cancelled" ? "The run was cancelled" : "The run failed", run.error);
      }
    }
  }

  showUsage(state) {
    const usage = state.usage;
    const box = $("usage");
    if (!usage) {
      const t = state.tokens;
      box.textContent = t.calls ? `so far: ${t.calls} model steps · ${t.in} in / ${t.out} out tokens` : "";
      return;
    }
    const parts = [`${usage.model_calls ?? 0} model calls`,
      `${usage.input_tokens ?? 0} in / ${usage.output_tokens ?? 0} out tokens`];
    if (typeof usage.cost_usd === "number" && usage.cost_usd > 0) parts.push(usd(usage.cost_usd));
    if (usage.unpriced_calls) parts.push(`${usage.unpriced_calls} calls unpriced`);
    const items = [el("span", "total", parts.join(" · "))];
    for (const [name, sub] of Object.entries(usage.sub_agents || {})) {
      const cost = typeof sub.cost_usd === "number" && sub.cost_usd > 0 ? " · " + usd(sub.cost_usd) : "";
      items.push(el("span", "sub", `${name}: ${sub.model_calls ?? 0} calls · ${sub.total_tokens ?? 0} tokens${cost}`));
    }
    box.replaceChildren(...items);
  }

  // -- approvals ----------------------------------------------------------------------------------

  async loadApprovals(state) {
    let approvals;
    try {
      approvals = (await getJson(`api/runs/${seg(state.runId)}/approvals`)).approvals || [];
    } catch (error) {
      if (this.state === state) this.showError(`Could not list the run's approvals: ${error.message}`);
      return;
    }
    if (this.state !== state) return;
    state.pending = new Map(approvals.map((a) => [a.approval_id, a]));
    const cards = approvals.map((approval) => this.approvalCard(state, approval));
    $("approvals").replaceChildren(...cards);
    $("approvals-box").hidden = cards.length === 0;
    this.showRequests(state);
  }

  approvalCard(state, approval) {
    const card = el("li", "approval");
    card.dataset.approvalId = approval.approval_id;
    const head = el("div", "approval-head");
    head.append(el("code", "target", approval.target), el("span", "muted", ` task ${approval.task_id}`));
    if (approval.asked_by && approval.asked_by.length) {
      head.append(el("span", "asked-by", "asked by " + approval.asked_by.join(" → ")));
    }
    if (typeof approval.requested_at === "number") {
      head.append(el("span", "muted", ` · waiting ${age(approval.requested_at)}`));
    }
    card.append(head, el("pre", "arguments", show(approval.arguments ?? {})));
    const reason = el("input", "reason");
    reason.type = "text";
    reason.placeholder = "reason (optional)";
    reason.maxLength = 1000;
    const approve = el("button", "approve", "Approve");
    const reject = el("button", "reject", "Reject");
    approve.type = reject.type = "button";
    const decide = async (approved) => {
      approve.disabled = reject.disabled = true;
      try {
        const body = { approved };
        if (reason.value.trim()) body.reason = reason.value.trim();
        await postJson(`api/runs/${seg(state.runId)}/approvals/${seg(approval.approval_id)}`, body);
        card.dataset.decided = approved ? "approved" : "rejected";
        state.pending.delete(approval.approval_id);
        this.showRequests(state);
      } catch (error) {
        this.showError(`Could not ${approved ? "approve" : "reject"} ${approval.target}: ${error.message}`);
      }
      if (this.state === state) this.loadApprovals(state);
    };
    approve.addEventListener("click", () => decide(true));
    reject.addEventListener("click", () => decide(false));
    const actions = el("div", "actions");
    actions.append(reason, approve, reject);
    card.append(actions);
    return card;
  }

  /** Every approval request the events showed (the run's own tasks' and nested agents'). */
  showRequests(state) {
    const items = [];
    for (const request of state.requests.values()) {
      const item = el("li", "request");
      const pending = state.pending.has(request.approvalId) ||
        [...state.pending.values()].some((a) => a.task_id === request.taskId && !request.nested);
      item.dataset.state = pending ? "pending" : "answered";
      const who = request.askedBy.length ? request.askedBy.join(" → ") : "this run";
      item.append(el("code", "target", request.target),
        el("span", "muted", ` (${request.taskId}) asked by ${who} at +${seconds(request.at - (state.gantt.t0 ?? request.at))}`),
        el("span", "request-state", pending ? " · pending" : " · answered"));
      item.title = show(request.arguments ?? "");
      items.push(item);
    }
    $("requests").replaceChildren(...items);
    $("requests-box").hidden = items.length === 0;
  }

  // -- cancel -------------------------------------------------------------------------------------

  async cancel() {
    const state = this.state;
    if (!state || state.ended) return;
    state.cancelling = true;
    $("cancel").disabled = true;
    this.setStatus("cancelling");
    try {
      await postJson(`api/runs/${seg(state.runId)}/cancel`, {});
    } catch (error) {
      state.cancelling = false;
      this.showError(`Could not cancel ${state.runId}: ${error.message}`);
      if (this.state === state) this.refresh(state, false);
    }
  }

  // -- events -------------------------------------------------------------------------------------

  listen(state) {
    const source = new EventSource(`api/runs/${seg(state.runId)}/events?deltas=1`);
    state.source = source;
    for (const kind of KINDS) {
      source.addEventListener(kind, (message) => {
        if (this.state !== state || state.ended) return;
        let data;
        try {
          data = JSON.parse(message.data);
        } catch (error) {
          this.showError(`A ${kind} event was not JSON (${error.message}); it is left out.`);
          return;
        }
        this.receive(state, kind, data);
      });
    }
    source.onopen = () => { if (this.state === state) this.setStream("open", ""); };
    source.onerror = () => {
      if (this.state !== state || state.ended) return;
      if (source.readyState === EventSource.CONNECTING) {
        this.setStream("lost", "The connection to the service was lost; reconnecting…");
      } else { // closed for good: the service refused the stream (an unknown run, say)
        this.setStream("refused", "The service refused the run's events.");
        getJson(`api/runs/${seg(state.runId)}/events`).catch((error) => {
          if (this.state === state) this.showError(`Could not follow run ${state.runId}: ${error.message}`);
        });
      }
    };
  }

  receive(state, kind, data) {
    const at = typeof data.at === "number" ? data.at : null;
    if (at !== null) {
      state.lastAt = at;
      state.skew = Math.min(state.skew, Date.now() / 1000 - at);
      if (kind === "run_started" || state.gantt.t0 === null) state.gantt.t0 = at;
    }
    if (kind === "run_started") {
      if (data.task && !$("run-task").textContent) $("run-task").textContent = data.task;
      if (!state.record) this.setStatus("running");
    } else if (kind === "run_resumed") {
      this.note(`resumed: attempt ${data.attempt}, replaying ${data.recorded_steps} recorded steps and ${data.recorded_tasks} task outcomes`);
    } else if (kind === "model_delta") {
      this.addWords(data.step, data.text);
    } else if (kind === "step") {
      this.addStep(state, data.step);
    } else if (kind === "model_fallback") {
      this.note(`step ${data.step}: ${data.model} failed (${data.error}); trying ${data.next_model}`);
    } else if (kind === "model_retried") {
      this.note(`a model call is retried: ${show(data.error ?? data.reason ?? "")}`.trim());
    } else if (kind === "run_parked") {
      this.note("parked: nothing left but a decision; the run holds no thread until it comes");
      this.refresh(state, false);
    } else if (kind === "events_dropped") {
      this.note(`${data.dropped} events were dropped: this view has gaps`);
    } else if (kind === "final_answer" || kind === "run_failed") {
      this.finish(state, { kind, data });
    } else if (data.task_event) {
      this.onTask(state, kind, data, at);
    }
  }

  onTask(state, kind, data, at) {
    const info = data.task_event;
    if (kind === "approval_requested") {
      // The run's own task's request has its task id for approval id; a nested agent's names
      // the agent, its run and its task.
      const key = typeof data.approval_id === "string" ? data.approval_id : info.task_id;
      const nested = key !== info.task_id;
      state.requests.set(key, {
        approvalId: key, taskId: info.task_id, target: info.target, nested,
        askedBy: data.asked_by || [], arguments: data.arguments, at,
      });
      this.showRequests(state);
      this.loadApprovals(state);
      if (nested) return; // a nested agent's task: not a lane of this run
    } else if (state.pending.size && DECIDES.has(kind)) {
      if ([...state.pending.values()].some((a) => a.task_id === info.task_id)) this.loadApprovals(state);
    }
    state.gantt.onTask(kind, info, at);
  }

  /** The run ended: with its last event (`end`), or as its record says (`end` null). */
  finish(state, end) {
    state.ended = true;
    if (state.source) state.source.close();
    state.endAt = end && typeof end.data.at === "number" ? end.data.at : state.lastAt;
    if (state.endAt === null && state.record) state.endAt = state.record.updated_at ?? null;
    if (state.endAt !== null) state.gantt.end(state.endAt);
    this.setStream("ended", "");
    $("cancel").disabled = true;
    $("writing")?.remove();
    state.pending.clear(); // an ended run waits for no decision
    $("approvals").replaceChildren();
    $("approvals-box").hidden = true;
    this.showRequests(state);
    if (end) {
      if (end.data.usage) state.usage = end.data.usage;
      if (end.kind === "final_answer") {
        this.showEnd("done", "Final answer", show(end.data.answer));
        this.setStatus("completed");
      } else {
        const cancelled = state.cancelling;
        this.showEnd(cancelled ? "cancelled" : "failed",
          cancelled ? "The run was cancelled" : "The run failed", end.data.error || "unknown error");
        this.setStatus(cancelled ? "cancelled" : "failed");
      }
      this.showUsage(state);
      this.refresh(state, true).then(() => this.draw(state)); // the final status, usage, tasks
    }
    this.draw(state);
    this.onEnd();
  }

  // -- drawing ------------------------------------------------------------------------------------

  /** The server's clock now: the browser's (less its lag, when the events show it runs behind),
   * never before the last event; the end, once the run ended. */
  now(state) {
    if (state.ended && state.endAt !== null) return state.endAt;
    const skew = Math.min(0, state.skew === Infinity ? 0 : state.skew);
    return Math.max(state.lastAt ?? 0, Date.now() / 1000 - skew);
  }

  draw(state) {
    state.gantt.draw(this.now(state));
  }

  tick(state) {
    const frame = (time) => {
      if (this.state !== state) return;
      if (time - state.drawn >= FRAME_MS) {
        state.drawn = time;
        this.draw(state);
      }
      if (!state.ended) state.frame = requestAnimationFrame(frame);
    };
    state.frame = requestAnimationFrame(frame);
  }

  setStatus(status) {
    const badge = $("run-status");
    badge.textContent = status;
    badge.className = "badge status-" + status;
    document.body.dataset.runStatus = status;
  }

  setStream(state, text) {
    const notice = $("stream-state");
    notice.dataset.state = state;
    notice.textContent = text;
    notice.hidden = !text;
  }

  note(text) {
    $("notes").append(el("li", "", text));
  }

  showEnd(state, title, text) {
    $("answer-title").textContent = title;
    $("answer").textContent = text;
    $("answer-box").dataset.state = state;
    $("answer-box").hidden = false;
  }

  // The model's words as it writes them, in the step they belong to; the step's own event
  // replaces them with the code and what it printed.
  addWords(number, text) {
    let item = $("writing");
    if (!item || item.dataset.step !== String(number)) {
      if (item) item.remove();
      item = el("li", "step writing");
      item.id = "writing";
      item.dataset.step = String(number);
      item.append(el("div", "step-head", `step ${number} · in progress: the model's reply as it comes`),
        el("pre", "words", ""));
      $("steps").append(item);
    }
    item.querySelector("pre").textContent += text;
  }

  addStep(state, step) {
    $("writing")?.remove();
    const facts = [`step ${step.number}`];
    if (typeof step.duration === "number") facts.push(seconds(step.duration));
    if (typeof step.input_tokens === "number") {
      facts.push(`${step.input_tokens} in / ${step.output_tokens ?? 0} out tokens`);
      state.tokens.in += step.input_tokens;
      state.tokens.out += step.output_tokens ?? 0;
    }
    state.tokens.calls += 1;
    if (step.error) facts.push("error");
    const item = el("li", "step");
    const box = el("details", "");
    box.open = true;
    box.append(el("summary", "step-head", facts.join(" · ")));
    if (step.code) box.append(el("div", "label", "code"), el("pre", "code", step.code));
    if (step.error) box.append(el("div", "label", "error"), el("pre", "observation error", step.error));
    else if (step.observation) box.append(el("div", "label", "observation"), el("pre", "observation", step.observation));
    if (!step.code && !step.error && !step.observation) {
      box.append(el("div", "muted", "no code: the model's reply ended the run"));
    }
    item.append(box);
    $("steps").append(item);
    this.showUsage(state);
  }
}
