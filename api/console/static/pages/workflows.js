// The definitions list: id, name, latest version, step count, triggers.

import { api } from "../api.js";
import { h, mount } from "../dom.js";
import { ago, dateTime } from "../format.js";
import { link } from "../router.js";
import { errorBox, errorsFrom, pageTitle, spinner } from "../ui.js";

export function workflowsView(root, _params, life) {
  const body = h("div", {}, spinner("Loading definitions…"));
  mount(root,
    h("div", { class: "page-head" },
      pageTitle("Definitions"),
      h("a", { class: "button", href: link("/new") }, "New definition")),
    body);

  api.listWorkflows({ signal: life.signal }).then((answer) => {
    const rows = answer.workflows || [];
    if (!rows.length) {
      mount(body, h("div", { class: "empty card" },
        h("p", {}, "No definitions yet."),
        h("p", { class: "muted" }, "Create one here, push files with ", h("code", {}, "wfe push DIR"),
          ", or PUT one to ", h("code", {}, "/api/workflows/{id}"), ".")));
      return;
    }
    rows.sort((a, b) => a.workflow_id.localeCompare(b.workflow_id));
    mount(body, h("div", { class: "table-wrap card" }, h("table", { class: "table", id: "workflows-table" },
      h("caption", { class: "visually-hidden" }, "Saved workflow definitions"),
      h("thead", {}, h("tr", {},
        ["Id", "Name", "Version", "Steps", "Triggers", "Saved", ""].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows.map((w) => {
        const href = link(`/workflows/${encodeURIComponent(w.workflow_id)}`);
        return h("tr", { "data-workflow": w.workflow_id },
          h("td", {}, h("a", { href, class: "strong" }, w.workflow_id)),
          h("td", {}, w.name || h("span", { class: "muted" }, "—"),
            w.description ? h("div", { class: "muted small clamp" }, w.description) : null),
          h("td", { class: "num" }, `v${w.version}`),
          h("td", { class: "num" }, String(w.steps)),
          h("td", {}, w.triggers?.length
            ? w.triggers.map((t) => h("span", { class: `chip chip-trigger` }, t))
            : h("span", { class: "muted" }, "—")),
          h("td", { title: dateTime(w.saved_at) }, ago(w.saved_at)),
          h("td", { class: "row-actions" },
            h("a", { class: "button small", href: link(`/workflows/${encodeURIComponent(w.workflow_id)}/run`),
              "aria-label": `Run ${w.workflow_id}` }, "Run ▸")));
      })))));
  }).catch((err) => {
    if (err.name === "AbortError") return;
    mount(body, errorBox(errorsFrom(err), { title: "Could not list the definitions" }));
  });
}
