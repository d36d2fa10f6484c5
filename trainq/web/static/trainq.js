// trainq web: live updates only. The run page polls its run's status and recolours the DAG;
// job panels re-load while their job is unfinished. Everything else is plain server-rendered HTML.
"use strict";

const POLL_MS = 500;
const PANEL_MS = 1000;
const BAR_W = 154;
const FINISHED = ["succeeded", "failed", "dead", "cancelled", "blocked"];

function stateBadge(state) {
  const span = document.createElement("span");
  span.className = "state state-" + state;
  span.textContent = state;
  return span;
}

async function loadPanel(target, jobId) {
  const response = await fetch("/fragments/jobs/" + encodeURIComponent(jobId));
  if (!response.ok) return null;
  // The fragment is rendered (and escaped) by the server's templates.
  target.innerHTML = await response.text();
  const job = target.querySelector(".job");
  return job ? job.dataset.state : null;
}

function followPanel(target, jobId) {
  let current = jobId;
  const tick = async () => {
    if (current !== jobId) return;
    const state = await loadPanel(target, jobId);
    if (state && !FINISHED.includes(state)) setTimeout(tick, PANEL_MS);
  };
  tick();
  return () => { current = null; };
}

function runPage(root) {
  const runId = root.dataset.run;
  const panel = document.getElementById("panel");
  const nodes = new Map();
  document.querySelectorAll("#dag .node").forEach((node) => nodes.set(node.dataset.job, node));
  let stopPanel = null;

  const select = (node) => {
    nodes.forEach((n) => n.classList.remove("selected"));
    node.classList.add("selected");
    if (stopPanel) stopPanel();
    const id = node.dataset.id || runId + "." + node.dataset.job;
    if (!node.dataset.id && ["waiting", "blocked", "cancelled"].includes(node.dataset.state)) {
      panel.textContent = node.dataset.job + " has not started (" + (node.dataset.state || "waiting") + ").";
      return;
    }
    stopPanel = followPanel(panel, id);
  };
  nodes.forEach((node) => {
    node.addEventListener("click", () => select(node));
    node.addEventListener("keydown", (e) => { if (e.key === "Enter") select(node); });
  });

  const update = (status) => {
    for (const job of status.jobs) {
      const node = nodes.get(job.job_id);
      if (!node) continue;
      node.setAttribute("class", "node state-" + job.state + (node.classList.contains("selected") ? " selected" : ""));
      node.dataset.state = job.state;
      if (job.job) node.dataset.id = job.job;
      const percent = job.progress ? job.progress.percent : (job.state === "succeeded" ? 100 : 0);
      node.querySelector(".sub").textContent = job.state + (job.progress && job.state === "running" ? " " + percent.toFixed(0) + "%" : "");
      node.querySelector(".fill").setAttribute("width", (BAR_W * percent / 100).toFixed(1));
    }
    const badge = document.getElementById("run-state");
    badge.replaceChildren(stateBadge(status.state));
    root.dataset.state = status.state;
  };

  let after = 0;
  const poll = async () => {
    try {
      const response = await fetch("/api/v1/pipelines/" + encodeURIComponent(runId));
      if (response.ok) {
        const status = await response.json();
        update(status);
        after = status.state === "running" ? 0 : after + 1;
      }
    } catch (error) {
      // the server may be restarting; keep polling
    }
    // Keep a slow poll after the run ends: a resume from elsewhere starts it again.
    setTimeout(poll, after > 2 ? POLL_MS * 10 : POLL_MS);
  };
  poll();
}

document.addEventListener("DOMContentLoaded", () => {
  const run = document.getElementById("run");
  if (run) runPage(run);
  const jobPage = document.getElementById("job-page");
  if (jobPage) {
    const job = jobPage.querySelector(".job");
    if (job && !FINISHED.includes(job.dataset.state)) {
      setTimeout(() => followPanel(jobPage, jobPage.dataset.id), PANEL_MS);
    }
  }
});
