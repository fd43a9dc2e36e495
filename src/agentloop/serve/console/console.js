// The operations console of `agentloop serve`: a single page, no build step, no dependencies.
// Two views behind hash routes, so reload and back work: the run list (`#/`) and one run's
// page (`#/runs/<id>`). Everything a run sends is shown as text (textContent), never as HTML:
// task texts, model-written code, tool results and answers are untrusted.
"use strict";

import { $ } from "./dom.js";
import { RunPage } from "./run.js";
import { RunList } from "./runs.js";

const RUN_ROUTE = /^#\/runs\/(.+)$/;

/** Shows `message` in the error banner until dismissed (the API's refusals are never hidden). */
function showError(message) {
  const banner = $("error");
  $("error-text").textContent = message;
  banner.hidden = false;
}

function route(list, page) {
  const match = RUN_ROUTE.exec(location.hash);
  const runId = match ? decodeURIComponent(match[1]) : null;
  $("list-view").hidden = runId !== null;
  $("run-view").hidden = runId === null;
  if (runId === null) {
    page.close();
    list.show();
    document.title = $("app-title").textContent;
  } else {
    list.hide();
    if (!page.state || page.state.runId !== runId) page.open(runId);
    document.title = `${runId} · ${$("app-title").textContent}`;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const list = new RunList({ showError });
  const page = new RunPage({ showError, onEnd: () => list.refresh() });
  $("error-close").addEventListener("click", () => { $("error").hidden = true; });
  window.addEventListener("hashchange", () => route(list, page));
  list.init().catch((error) => showError("Could not load the agents: " + error.message));
  route(list, page);
});
