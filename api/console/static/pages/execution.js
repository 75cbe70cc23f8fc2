// One execution: what it is, where it is (the step timeline, live while it runs), what it
// produced (outputs, usage, cost, the log), and what can be done with it (cancel, signal or
// approve, rerun from a step, open it in the Temporal UI).

import { answersPanel, followEvents } from "../answers.js";
import { api } from "../api.js";
import { h, mount } from "../dom.js";
import { cost, costOf, count, dateTime, duration, elapsed, shortId } from "../format.js";
import { keyOfPath } from "../graph/model.js";
import { renderGraph } from "../graph/render.js";
import { loadKinds } from "../graph/schema.js";
import { createGraphViewer } from "../graph/viewer.js";
import { link } from "../router.js";
import { mergeRecords, renderTimeline } from "../timeline.js";
import { errorBox, errorsFrom, jsonBlock, pageTitle, spinner, statusBadge, worseStatus } from "../ui.js";
import { actionsPanel } from "./actions.js";

const POLL_MS = 1000;
const HIDDEN_POLL_MS = 5000; // a background tab need not ask every second
const LOG_EVERY_TICKS = 5;
const MAX_LOG_CHARS = 200_000;

function term(label, value) {
  return [h("dt", {}, label), h("dd", {}, value ?? h("span", { class: "muted" }, "—"))];
}

function usagePanel(usage) {
  if (!usage || typeof usage !== "object" || !Object.keys(usage).length) {
    return h("p", { class: "muted" }, "No AI usage reported for this run.");
  }
  return h("dl", { class: "facts" },
    term("Cost", cost(usage.cost_usd)),
    term("AI calls", usage.ai_calls !== undefined ? count(usage.ai_calls) : null),
    term("Prompt tokens", usage.prompt_tokens !== undefined ? count(usage.prompt_tokens) : null),
    term("Completion tokens", usage.completion_tokens !== undefined ? count(usage.completion_tokens) : null),
    term("Total tokens", usage.total_tokens !== undefined ? count(usage.total_tokens) : null));
}

/** Which outputs are summaries of large values, and where their full values are. */
function summarisedNote(id, names) {
  if (!Array.isArray(names) || !names.length) return null;
  return h("p", { class: "muted small", id: "summarised-note" },
    `Over 4 KiB, summarised: ${names.join(", ")}. In full: `,
    h("code", {}, `GET /api/executions/${id}?include=variables`), " or the execution log below.");
}

export function executionView(root, params, life) {
  const id = params.id;
  const title = pageTitle(`Execution ${shortId(id)}`);
  const badge = h("span", { class: "title-badge" });
  const facts = h("dl", { class: "facts facts-grid" });
  const alerts = h("div");
  const actionsHost = h("div");
  const timelineHost = h("div", {}, spinner("Loading steps…"));
  const graphHost = h("div", { class: "graph-host" });
  const outputsHost = h("div");
  const usageHost = h("div");
  const logHost = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  const answers = answersPanel();
  const body = h("div", { class: "execution" },
    h("div", { class: "page-head" }, h("div", { class: "title-row" }, title, badge), h("p", { class: "muted mono small" }, id)),
    alerts,
    answers.element,
    h("section", { class: "card", "aria-labelledby": "facts-title" }, h("h2", { id: "facts-title", class: "visually-hidden" }, "Summary"), facts),
    h("div", { class: "columns" },
      h("section", { class: "card grow", "aria-labelledby": "timeline-title" },
        h("h2", { id: "timeline-title" }, "Steps"), timelineHost),
      h("div", { class: "side" },
        actionsHost,
        h("section", { class: "card", "aria-labelledby": "outputs-title" }, h("h2", { id: "outputs-title" }, "Outputs"), outputsHost),
        h("section", { class: "card", "aria-labelledby": "usage-title" }, h("h2", { id: "usage-title" }, "Usage and cost"), usageHost))),
    h("details", { class: "card", open: true }, h("summary", {}, h("h2", {}, "Graph")), graphHost),
    h("details", { class: "card log" }, h("summary", {}, h("h2", {}, "Execution log")), logHost));
  mount(root,
    h("nav", { class: "breadcrumb", "aria-label": "Breadcrumb" }, h("a", { href: link("/executions") }, "Executions"), " / ", shortId(id)),
    body);

  let status = null;
  let logDoc = null;
  let definition = null;
  let kinds; // the step kinds (graph/schema.js), read with the definition
  let definitionAsked = false;
  let ticks = 0;
  let settling = 0; // polls after the end, until the log agrees (bounded)
  let timer = null;
  let drawn = { timeline: "", graph: "", outputs: "", usage: "", log: "" };
  const openKeys = new Set();
  const closedGroups = new Set();
  const viewer = createGraphViewer();
  const actions = actionsPanel({ id, life, afterChange: () => poll(true) });
  mount(actionsHost, actions.element);
  life.onCleanup(() => clearTimeout(timer));

  function records() {
    return mergeRecords(logDoc?.steps, status?.steps);
  }

  function drawFacts() {
    const s = status;
    const ui = s.links?.temporal_ui;
    const money = cost(costOf(s) ?? costOf(logDoc));
    title.textContent = s.workflow_name || s.workflow_id || `Execution ${shortId(id)}`;
    mount(badge, statusBadge(s.status));
    const wfLink = s.workflow_id !== null && s.workflow_id !== undefined
      ? h("a", { href: link(`/workflows/${encodeURIComponent(s.workflow_id)}`, { version: s.definition_version }) },
        String(s.workflow_id), s.definition_version ? ` v${s.definition_version}` : "")
      : null;
    const current = s.current_steps?.length ? s.current_steps.join(", ") : s.current_step;
    mount(facts,
      term("Status", statusBadge(s.status)),
      term("Workflow", wfLink),
      term("Started by", s.started_by),
      term("Started", s.started_at ? dateTime(s.started_at) : null),
      term("Ended", s.ended_at ? dateTime(s.ended_at) : null),
      term("Duration", h("span", { id: "duration" }, duration(elapsed(s.started_at, s.ended_at)))),
      term("Steps", count(s.steps_total)),
      term("Current step", current ? h("code", {}, current) : null),
      term("Cost", money),
      s.rerun_of ? term("Rerun of", h("a", { href: link(`/executions/${encodeURIComponent(s.rerun_of)}`) }, shortId(s.rerun_of))) : null,
      term("Temporal", ui
        ? h("a", { href: ui, target: "_blank", rel: "noopener noreferrer", id: "temporal-link" }, "Open in the Temporal UI ↗")
        : null));
    const problems = [];
    if (s.error) {
      problems.push(h("div", { class: "errors", role: "alert" },
        h("p", { class: "errors-title" }, `${s.status === "terminated" ? "Terminated" : "Failed"}: ${s.error.type}`),
        h("p", {}, s.error.message, s.error.step_id ? h("span", { class: "muted" }, ` (step ${s.error.step_id})`) : null)));
    }
    if (s.live === false) {
      problems.push(h("p", { class: "notice" },
        "No worker answered: this is Temporal's view alone (steps and variables may be missing)."));
    }
    mount(alerts, problems);
  }

  function drawSection(name, host, value, draw) {
    const signature = JSON.stringify(value) ?? "";
    if (drawn[name] === signature) return; // unchanged: keep the DOM (and the reader's place)
    drawn[name] = signature;
    mount(host, draw());
  }

  function drawAll() {
    drawFacts();
    const list = records();
    drawSection("timeline", timelineHost, list, () => renderTimeline(list, { openKeys, closedGroups, executionId: id }));
    // Steps still running: their time grows though their record has not changed.
    for (const el of timelineHost.querySelectorAll("[data-running-since]")) {
      el.textContent = duration(elapsed(el.dataset.runningSince, null));
    }
    drawSection("outputs", outputsHost, status.outputs, () =>
      status.outputs && Object.keys(status.outputs).length
        ? h("div", {}, jsonBlock(status.outputs, "Outputs"), summarisedNote(id, status.summarised))
        : h("p", { class: "muted" }, "No variables yet."));
    drawSection("usage", usageHost, status.usage ?? logDoc?.usage ?? null, () => usagePanel(status.usage ?? logDoc?.usage));
    drawSection("log", logHost, logDoc, () => {
      if (!logDoc) return h("p", { class: "muted" }, "No log yet.");
      const text = JSON.stringify(logDoc, null, 2);
      return h("div", {},
        h("p", { class: "muted small" }, `${logDoc.steps?.length ?? 0} step records · status ${logDoc.status ?? "?"}`),
        h("pre", { class: "json", tabindex: "0", "aria-label": "Execution log" },
          text.length > MAX_LOG_CHARS ? `${text.slice(0, MAX_LOG_CHARS)}\n… (cut; the whole log is at GET /api/executions/${id}/log)` : text));
    });
    drawGraph(list);
    actions.update(status, list);
  }

  function drawGraph(list) {
    if (!definition) {
      if (definitionAsked && !graphHost.childElementCount) mount(graphHost, h("p", { class: "muted" }, "The definition is not readable with this key."));
      return;
    }
    const byKey = new Map();
    for (const r of list) {
      const key = keyOfPath(r.path || r.step_id);
      byKey.set(key, worseStatus(byKey.get(key), r.status)); // iterations: the worst shows
    }
    const signature = JSON.stringify([...byKey]);
    if (drawn.graph === signature) return;
    drawn.graph = signature;
    if (!graphHost.contains(viewer.element)) mount(graphHost, viewer.element);
    viewer.show(renderGraph(definition.steps, { kinds, statusOf: (key) => byKey.get(key) || null }));
  }

  function loadDefinition() {
    if (definitionAsked || !status?.workflow_id) return;
    definitionAsked = true;
    Promise.all([
      api.getWorkflow(String(status.workflow_id), status.definition_version || undefined, { signal: life.signal }),
      loadKinds(),
    ])
      .then(([answer, known]) => {
        kinds = known;
        definition = answer.definition;
        drawn.graph = "";
        drawGraph(records());
      })
      .catch(() => drawGraph(records()));
  }

  async function poll(force = false) {
    clearTimeout(timer);
    try {
      const before = status;
      status = await api.getExecution(id, { signal: life.signal });
      const changed = !before || before.status !== status.status || before.steps_total !== status.steps_total
        || before.current_step !== status.current_step;
      ticks += 1;
      if (force || changed || !logDoc || ticks % LOG_EVERY_TICKS === 0) {
        logDoc = await api.getLog(id, { signal: life.signal }).catch((err) => {
          if (err.name === "AbortError") throw err;
          return logDoc; // no log yet (it is written as steps finish)
        });
      }
      drawAll();
      loadDefinition();
    } catch (err) {
      if (err.name === "AbortError") return;
      if (!status) {
        mount(body, errorBox(errorsFrom(err), { title: `Could not read execution ${shortId(id)}` }));
        return;
      }
      mount(alerts, errorBox(errorsFrom(err), { title: "Could not refresh (retrying)" }));
    }
    if (life.alive && status?.status === "running") {
      timer = setTimeout(() => poll(), document.hidden ? HIDDEN_POLL_MS : POLL_MS);
    } else if (life.alive && status && logDoc?.status !== status.status && (settling += 1) <= 5) {
      // Just finished: the log's last records may land a moment after the status does.
      timer = setTimeout(() => poll(true), POLL_MS);
    }
  }

  poll();
  // AI answers as they are written; a step that ends refreshes the timeline at once.
  followEvents(id, {
    signal: life.signal,
    onEvent(name, data) {
      if (name === "delta") answers.delta(data);
      else if ((name === "step" && data.status !== "running") || name === "end") poll(true);
    },
  });
}
