// The dashboard page: reads /data/rollouts (the app's status, proxied and shaped by aml-rollouts) and draws it.
// Every text goes in with textContent; the charts are plotly.js (served by aml-rollouts from the plotly package).
"use strict";

const page = { data: null, selected: null, drawn: "", timer: null, parts: {} };
const COLOURS = { good: "#1a7f37", bad: "#cf222e", warn: "#9a6700", running: "#0969da", neutral: "#6e7781" };
const PLOT_CONFIG = { displayModeBar: false, responsive: true };

function $(id) { return document.getElementById(id); }

// The page reads the app every few seconds, and the observed split's time changes at each pass: a part of the
// page is rebuilt only when what it shows changed, so the buttons a person is clicking and the rows they are
// reading stay the same elements across refreshes (a click on a button replaced mid-click is lost).
function changed(part, shown) {
  const fingerprint = JSON.stringify(shown);
  if (page.parts[part] === fingerprint) return false;
  page.parts[part] = fingerprint;
  return true;
}

function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  return node;
}

function badge(state, kind) {
  return el("span", state, { class: `badge ${kind || "unknown"}`, "data-state": state });
}

function clock(iso) {
  if (!iso) return "-";
  const when = new Date(iso);
  return Number.isNaN(when.getTime()) ? iso : when.toISOString().slice(11, 19) + "Z";
}

function round(value) {
  return String(Number(value.toPrecision(3)));
}

function showProblem(text) {
  const box = $("problem");
  box.hidden = !text;
  box.textContent = text || "";
}

async function load() {
  try {
    const response = await fetch("/data/rollouts", { credentials: "same-origin", cache: "no-store" });
    const body = await response.json().catch(() => ({ error: `the dashboard answered ${response.status}` }));
    if (!response.ok) throw new Error(body.error || `the dashboard answered ${response.status}`);
    page.data = body;
    showProblem("");
    $("refreshed").textContent = `updated ${new Date().toISOString().slice(11, 19)}Z`;
    render();
  } catch (err) {
    showProblem(`Cannot read the rollouts: ${err.message}. Showing the last ones read.`);
  }
}

function rollouts() {
  return (page.data ? page.data.endpoints : []).flatMap((group) => group.rollouts);
}

function render() {
  const data = page.data;
  $("source").textContent = data.source;
  const mode = $("mode");
  mode.textContent = data.allowActions ? "actions enabled" : "read-only";
  mode.className = data.allowActions ? "mode actions" : "mode";
  const all = rollouts();
  if (!all.some((r) => r.key === page.selected)) page.selected = all.length ? all[0].key : null;
  renderList(data);
  const chosen = all.find((r) => r.key === page.selected);
  $("empty").hidden = Boolean(chosen);
  $("rollout").hidden = !chosen;
  if (chosen) {
    const fingerprint = JSON.stringify([chosen, data.allowActions]);
    if (fingerprint !== page.drawn) {
      page.drawn = fingerprint;
      renderDetail(chosen, data);
    }
  }
}

function renderList(data) {
  const listed = data.endpoints.map((group) => [
    group.endpoint, group.rollouts.map((r) => [r.key, r.deployment, r.model, r.state, r.badge]),
  ]);
  if (!changed("list", [listed, page.selected, Boolean(data.more)])) return;
  const nav = $("endpoints");
  nav.replaceChildren();
  for (const group of data.endpoints) {
    nav.append(el("h2", group.endpoint));
    for (const r of group.rollouts) {
      const button = el("button", null, { class: "rollout", type: "button", "data-key": r.key });
      button.setAttribute("aria-current", String(r.key === page.selected));
      const name = el("span", r.deployment);
      name.append(el("span", ` ${r.model}`, { class: "dim" }));
      button.append(name, badge(r.state, r.badge));
      button.addEventListener("click", () => { page.selected = r.key; page.drawn = ""; render(); });
      nav.append(button);
    }
  }
  if (data.more) nav.append(el("p", "Older rollouts: aml-rollouts list --all", { class: "dim" }));
}

function renderDetail(r, data) {
  $("detail-key").textContent = r.key;
  $("detail-model").textContent = r.model;
  const state = $("detail-state");
  state.textContent = r.state;
  state.className = `badge ${r.badge}`;
  state.dataset.state = r.state;
  $("detail-paused").hidden = !r.paused;
  $("detail-step").textContent = r.stepText;
  $("detail-split").textContent = `${r.split.text} (${r.split.source}${r.split.at ? " " + clock(r.split.at) : ""})`;
  const last = r.gates.length ? r.gates[r.gates.length - 1] : null;
  const gate = $("detail-gate");
  gate.textContent = last ? last.summary : "not judged yet";
  gate.className = last ? { pass: "good-text", fail: "bad-text" }[last.outcome] || "warn-text" : "dim";
  $("detail-next").textContent = r.next.at ? `${clock(r.next.at)} ${r.next.what}` : r.next.what;
  $("detail-reason").textContent = r.reason || "-";
  $("detail-error").textContent = r.lastError;
  $("detail-error").hidden = $("detail-error-label").hidden = !r.lastError;
  renderSteps(r);
  renderActions(data);
  renderTraffic(r);
  renderGates(r);
  renderHistory(r);
}

function renderSteps(r) {
  if (!changed("steps", r.steps)) return;
  const list = $("steps");
  list.replaceChildren();
  for (const step of r.steps) {
    list.append(el("li", `step ${step.number}: ${step.share}% · ${step.status}`, { "data-status": step.status }));
  }
}

function renderTraffic(r) {
  const chart = $("traffic-chart");
  $("traffic-none").hidden = r.traffic.length > 0;
  chart.hidden = r.traffic.length === 0;
  if (!r.traffic.length) return;
  const traces = r.traffic.map((series) => ({
    name: series.name, x: series.x, y: series.y, type: "scatter", mode: "lines+markers", line: { shape: "hv" },
  }));
  Plotly.react(chart, traces, {
    margin: { l: 45, r: 10, t: 10, b: 40 },
    yaxis: { range: [0, 105], ticksuffix: "%", title: { text: "live traffic" } },
    xaxis: { type: "date", title: { text: "UTC, the app's clock" } },
    legend: { orientation: "h", y: 1.15 },
  }, PLOT_CONFIG);
}

function renderGates(r) {
  if (!changed("gates", r.gates)) return;
  const box = $("gates");
  box.replaceChildren();
  $("gates-none").hidden = r.gates.length > 0;
  r.gates.slice().reverse().forEach((gate) => {
    const card = el("div", null, { class: "gate", "data-outcome": gate.outcome });
    const colour = { pass: "good-text", fail: "bad-text" }[gate.outcome] || "warn-text";
    card.append(
      el("div", gate.summary, { class: `verdict ${colour}` }),
      el("div", `${gate.evidence} · window ${clock(gate.window.start)}-${clock(gate.window.end)}`, { class: "dim" }),
    );
    const charts = el("div", null, { class: "charts" });
    card.append(charts);
    box.append(card);
    for (const spec of gate.charts) {
      const node = el("div", null, { class: "gate-chart", "data-title": spec.title });
      charts.append(node);
      drawGateChart(node, spec, gate.outcome);
    }
  });
}

function drawGateChart(node, spec, outcome) {
  const colour = COLOURS[{ pass: "good", fail: "bad" }[outcome] || "warn"];
  const shapes = spec.thresholds.map((t) => ({
    type: "line", xref: "paper", x0: 0, x1: 1, y0: t.value, y1: t.value, line: { color: "#cf222e", dash: "dash", width: 1.5 },
  }));
  const notes = spec.thresholds.map((t) => ({
    xref: "paper", x: 1, y: t.value, xanchor: "right", yanchor: "bottom", showarrow: false,
    text: `${t.label} ${round(t.value)}`, font: { size: 10, color: "#cf222e" },
  }));
  const top = Math.max(...spec.values, ...spec.thresholds.map((t) => t.value), 1) * 1.2;
  Plotly.react(node, [{
    type: "bar", x: spec.labels, y: spec.values, marker: { color: spec.labels.map((_, i) => (i ? COLOURS.neutral : colour)) },
    text: spec.values.map(round), textposition: "auto",
  }], {
    title: { text: spec.title, font: { size: 12 } }, margin: { l: 40, r: 10, t: 30, b: 30 },
    yaxis: { range: [0, top] }, shapes, annotations: notes, showlegend: false,
  }, PLOT_CONFIG);
}

function renderHistory(r) {
  if (!changed("history", r.history)) return;
  const table = $("history");
  const body = table.querySelector("tbody");
  body.replaceChildren();
  table.hidden = r.history.length === 0;
  $("history-none").hidden = r.history.length > 0;
  for (const entry of r.history.slice().reverse()) {
    const row = el("tr");
    for (const value of [clock(entry.at), entry.action, entry.caller, entry.effect, entry.reason || "-"]) row.append(el("td", value));
    body.append(row);
  }
}

function renderActions(data) {
  if (!changed("actions", [data.allowActions, data.actions])) return;
  const box = $("actions");
  box.replaceChildren();
  box.hidden = !data.allowActions;
  if (!data.allowActions) return;
  for (const action of data.actions) {
    const button = el("button", action.name, { type: "button", "data-action": action.name, title: action.summary });
    // The rollout shown when the button is clicked, not when it was drawn: the buttons outlive a selection.
    button.addEventListener("click", () => {
      const shown = rollouts().find((r) => r.key === page.selected);
      if (shown) ask(shown, action);
    });
    box.append(button);
  }
}

function ask(r, action) {
  const dialog = $("confirm");
  $("confirm-title").textContent = `${action.name} ${r.key}?`;
  $("confirm-summary").textContent = action.summary;
  $("confirm-reason").value = "";
  $("confirm-problem").hidden = true;
  const go = $("confirm-go");
  go.textContent = `Confirm ${action.name}`;
  go.onclick = () => send(r, action.name);
  $("confirm-cancel").onclick = () => dialog.close();
  dialog.showModal();
}

async function send(r, action) {
  const reason = $("confirm-reason").value.trim();
  const problem = $("confirm-problem");
  if (!reason) {
    problem.textContent = "Say why: the reason is recorded with the action.";
    problem.hidden = false;
    return;
  }
  const response = await fetch("/data/action", {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-Aml-Rollouts": "action" },
    body: JSON.stringify({ endpoint: r.endpoint, deployment: r.deployment, action, reason }),
  });
  const body = await response.json().catch(() => ({ error: `the dashboard answered ${response.status}` }));
  if (!response.ok) {
    problem.textContent = body.error;
    problem.hidden = false;
    return;
  }
  $("confirm").close();
  showProblem("");
  $("notice").textContent = `${action} ${r.key}: ${body.note} (now ${body.state})`;
  page.drawn = "";
  load();
}

document.addEventListener("DOMContentLoaded", () => {
  load().then(() => {
    const every = page.data ? page.data.refreshSeconds : 5;
    page.timer = setInterval(load, Math.max(every, 1) * 1000);
  });
});
