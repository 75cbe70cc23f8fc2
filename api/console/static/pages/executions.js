// The executions list: status, version, who started it, duration, cost; filters by workflow
// and status (kept in the route, so a filtered list can be bookmarked). While rows are
// running, the first page refreshes itself.

import { api } from "../api.js";
import { h, mount } from "../dom.js";
import { ago, cost, costOf, dateTime, duration, elapsed, shortId } from "../format.js";
import { link, replace } from "../router.js";
import { errorBox, errorsFrom, pageTitle, spinner, statusBadge } from "../ui.js";

const STATUSES = ["running", "completed", "failed", "cancelled", "terminated"];
const REFRESH_MS = 3000;
const PAGE_SIZE = 50;

function row(e) {
  const href = link(`/executions/${encodeURIComponent(e.execution_id)}`);
  const money = cost(costOf(e));
  return h("tr", { "data-execution": e.execution_id, "data-status": e.status },
    h("td", {}, h("a", { href, class: "mono strong", title: e.execution_id }, shortId(e.execution_id))),
    h("td", {}, e.workflow_id
      ? h("a", { href: link(`/workflows/${encodeURIComponent(e.workflow_id)}`, { version: e.definition_version }) }, e.workflow_id)
      : "—"),
    h("td", { class: "num" }, e.definition_version ? `v${e.definition_version}` : "—"),
    h("td", {}, statusBadge(e.status)),
    h("td", {}, e.started_by || h("span", { class: "muted" }, "—")),
    h("td", { title: dateTime(e.started_at) }, ago(e.started_at)),
    h("td", { class: "num", "data-running": e.ended_at ? null : "1", "data-start": e.started_at || "" },
      duration(elapsed(e.started_at, e.ended_at))),
    h("td", { class: "num" }, money || h("span", { class: "muted", title: "no AI usage reported" }, "—")));
}

export function executionsView(root, params, life) {
  const workflow = h("select", { id: "filter-workflow", name: "workflow_id" }, h("option", { value: "" }, "All workflows"));
  const status = h("select", { id: "filter-status", name: "status" },
    h("option", { value: "" }, "Any status"),
    STATUSES.map((s) => h("option", { value: s }, s)));
  const refresh = h("button", { type: "button", onclick: () => load() }, "Refresh");
  const body = h("div", {}, spinner("Loading executions…"));
  const more = h("div", { class: "actions" });
  let token = null;
  let timer = null;
  let extraPages = false;

  function filters() {
    return { workflow_id: workflow.value, status: status.value };
  }
  const onFilter = () => replace("/executions", filters());
  workflow.addEventListener("change", onFilter);
  status.addEventListener("change", onFilter);

  mount(root,
    h("div", { class: "page-head" }, pageTitle("Executions")),
    h("form", { class: "filters card", role: "search", "aria-label": "Filter executions", onsubmit: (e) => e.preventDefault() },
      h("label", { for: "filter-workflow" }, "Workflow"), workflow,
      h("label", { for: "filter-status" }, "Status"), status,
      refresh),
    body, more);

  api.listWorkflows({ signal: life.signal }).then((answer) => {
    const chosen = workflow.value;
    for (const w of (answer.workflows || []).sort((a, b) => a.workflow_id.localeCompare(b.workflow_id))) {
      if (w.workflow_id === chosen) continue;
      workflow.append(h("option", { value: w.workflow_id }, w.workflow_id));
    }
  }).catch(() => {}); // the list still works with the filter the route gave

  // The live durations of running rows tick without asking the API.
  const tick = setInterval(() => {
    for (const cell of body.querySelectorAll("td[data-running]")) {
      cell.textContent = duration(elapsed(cell.dataset.start, null));
    }
  }, 1000);
  life.onCleanup(() => {
    clearInterval(tick);
    clearTimeout(timer);
  });

  function schedule(rows) {
    clearTimeout(timer);
    if (life.alive && !extraPages && rows.some((e) => e.status === "running")) {
      timer = setTimeout(() => load(), REFRESH_MS);
    }
  }

  async function load(pageToken) {
    clearTimeout(timer);
    try {
      const answer = await api.listExecutions(
        { ...filters(), page_size: PAGE_SIZE, page_token: pageToken },
        { signal: life.signal },
      );
      const rows = answer.executions || [];
      token = answer.next_page_token || null;
      if (pageToken) {
        extraPages = true;
        body.querySelector("tbody")?.append(...rows.map(row));
      } else if (!rows.length) {
        mount(body, h("div", { class: "empty card" }, h("p", {}, "No executions match."),
          h("p", { class: "muted" }, "Start one from a definition's Run tab.")));
      } else {
        mount(body, h("div", { class: "table-wrap card" }, h("table", { class: "table", id: "executions-table" },
          h("caption", { class: "visually-hidden" }, "Executions, newest first"),
          h("thead", {}, h("tr", {}, ["Execution", "Workflow", "Version", "Status", "Started by", "Started", "Duration", "Cost"]
            .map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, rows.map(row)))));
      }
      mount(more, token ? h("button", { type: "button", onclick: () => load(token) }, "Load more") : null);
      if (!pageToken) schedule(rows);
    } catch (err) {
      if (err.name === "AbortError") return;
      mount(body, errorBox(errorsFrom(err), { title: "Could not list executions" }));
    }
  }

  function apply(next) {
    const q = next.query;
    const wanted = q.get("workflow_id") || "";
    if (wanted && ![...workflow.options].some((o) => o.value === wanted)) {
      workflow.append(h("option", { value: wanted }, wanted));
    }
    workflow.value = wanted;
    status.value = STATUSES.includes(q.get("status")) ? q.get("status") : "";
    extraPages = false;
    mount(body, spinner("Loading executions…"));
    load();
  }
  apply(params);
  return { update: apply };
}
