// One definition: its graph, its JSON (editable: saving makes a new version), the run form,
// and its versions. Tabs are part of the route (`#/workflows/<id>/edit`), so they can be
// linked and the back button works; switching tabs keeps unsaved edits.

import { api } from "../api.js";
import { createDefinitionEditor } from "../defeditor.js";
import { h, mount } from "../dom.js";
import { dateTime } from "../format.js";
import { scopeOf } from "../graph/model.js";
import { renderGraph } from "../graph/render.js";
import { loadKinds } from "../graph/schema.js";
import { createGraphViewer } from "../graph/viewer.js";
import { link, navigate, reload } from "../router.js";
import { errorBox, errorsFrom, pageTitle, spinner, toast } from "../ui.js";
import { runForm } from "./runform.js";
import { testsPanel } from "./tests.js";

const TABS = [
  ["graph", "Graph"],
  ["edit", "JSON"],
  ["run", "Run"],
  ["tests", "Tests"],
];

function outline(scope) {
  return h("ul", {}, scope.items.map((item) => h("li", {},
    h("code", {}, item.id), ` ${item.type}`, item.name ? ` — ${item.name}` : "",
    item.scopes.map((c) => h("div", { class: "outline-scope" }, c.label, outline(c.scope))))));
}

export function workflowView(root, params, life) {
  const id = params.id;
  const version = params.query.get("version") || undefined;
  const base = `/workflows/${encodeURIComponent(id)}`;
  const title = pageTitle(id);
  const meta = h("div", { class: "meta-line" });
  const tabLinks = new Map();
  const tabList = h("div", { class: "tabs", role: "tablist", "aria-label": "Definition views" },
    TABS.map(([tab, label]) => {
      const a = h("a", { role: "tab", id: `tab-${tab}`, "aria-controls": `panel-${tab}`, href: "#" }, label);
      tabLinks.set(tab, a);
      return a;
    }),
    h("a", { class: "tab-like", href: link("/executions", { workflow_id: id }) }, "Its executions →"));
  const panels = new Map(TABS.map(([tab]) => [tab,
    h("section", { role: "tabpanel", id: `panel-${tab}`, "aria-labelledby": `tab-${tab}`, class: "panel", hidden: true })]));
  const body = h("div", {}, spinner("Loading the definition…"));
  mount(root,
    h("nav", { class: "breadcrumb", "aria-label": "Breadcrumb" }, h("a", { href: link("/workflows") }, "Definitions"), " / ", id),
    h("div", { class: "page-head" }, title, meta),
    body);

  let current = params.tab || "graph";
  let loaded = null;
  let defEditor = null;
  let graphHost = null;
  let graphNote = null;
  let graphParts = null; // the viewer (its zoom kept across redraws) and the outline below it
  let kinds; // the step kinds (graph/schema.js), read with the definition
  let runPanelMade = false;
  let testsPanelMade = false;

  function showTab(tab) {
    current = TABS.some(([t]) => t === tab) ? tab : "graph";
    for (const [t, a] of tabLinks) {
      const selected = t === current;
      a.setAttribute("aria-selected", String(selected));
      a.setAttribute("tabindex", selected ? "0" : "-1");
      a.setAttribute("href", link(t === "graph" ? base : `${base}/${t}`, { version }));
      panels.get(t).hidden = !selected;
    }
    if (current === "run" && loaded && !runPanelMade) {
      runPanelMade = true;
      makeRunPanel();
    }
    if (current === "tests" && loaded && !testsPanelMade) {
      testsPanelMade = true;
      mount(panels.get("tests"), testsPanel({ workflowId: id }));
    }
  }

  // Arrow keys move between tabs (the WAI-ARIA tabs pattern).
  tabList.addEventListener("keydown", (event) => {
    if (event.key !== "ArrowRight" && event.key !== "ArrowLeft") return;
    const order = TABS.map(([t]) => t);
    const next = order[(order.indexOf(current) + (event.key === "ArrowRight" ? 1 : order.length - 1)) % order.length];
    navigate(next === "graph" ? base : `${base}/${next}`, { version });
    tabLinks.get(next).focus();
  });

  function drawGraph(document, edited) {
    const steps = document && typeof document === "object" ? document.steps : null;
    mount(graphNote, edited ? h("p", { class: "notice" }, "Showing your unsaved edits.") : null);
    if (!Array.isArray(steps)) {
      graphParts = null;
      mount(graphHost, h("p", { class: "muted" }, "No steps to draw (the JSON has no \"steps\" list)."));
      return;
    }
    const svg = renderGraph(steps, {
      kinds,
      onSelect: (item) => {
        navigate(`${base}/edit`, { version });
        showTab("edit"); // now, not on the hashchange: the editor must be visible to focus
        defEditor?.goToPath(item.jsonPath);
      },
    });
    if (!graphParts) {
      graphParts = { viewer: createGraphViewer(), outline: h("details", { class: "outline" }) };
      mount(graphHost, graphParts.viewer.element,
        h("div", { class: "legend", "aria-label": "Legend" },
          h("span", { class: "legend-item edge-next" }, "next step"),
          h("span", { class: "legend-item edge-jump" }, "jump (next)"),
          h("span", { class: "legend-item edge-branch" }, "condition branch"),
          h("span", { class: "legend-item edge-error" }, "on_error route")),
        graphParts.outline);
    }
    graphParts.viewer.show(svg);
    mount(graphParts.outline, h("summary", {}, "Steps as a list"), outline(scopeOf(steps, { kinds })));
  }

  function makeRunPanel() {
    const panel = panels.get("run");
    const latest = loaded.versions[loaded.versions.length - 1];
    if (loaded.version === latest) {
      mount(panel, runForm({ workflowId: id, definition: loaded.definition, version: latest, life }));
      return;
    }
    // A run always starts the latest version: its form follows the latest inputs schema.
    mount(panel, spinner());
    api.getWorkflow(id, undefined, { signal: life.signal })
      .then((answer) => mount(panel,
        h("p", { class: "notice" }, `Runs start the latest version (v${answer.version}); this form follows its inputs.`),
        runForm({ workflowId: id, definition: answer.definition, version: answer.version, life })))
      .catch((err) => err.name !== "AbortError" && mount(panel, errorBox(errorsFrom(err))));
  }

  function versionPicker(answer) {
    const latest = answer.versions[answer.versions.length - 1];
    const select = h("select", {
      id: "version-select",
      "aria-label": "Version",
      onchange: (event) => {
        const v = Number(event.target.value);
        navigate(current === "graph" ? base : `${base}/${current}`, { version: v === latest ? undefined : v });
      },
    }, [...answer.versions].reverse().map((v) =>
      h("option", { value: String(v), selected: v === answer.version }, `v${v}${v === latest ? " (latest)" : ""}`)));
    return h("label", { class: "inline-field" }, "Version ", select);
  }

  Promise.all([api.getWorkflow(id, version, { signal: life.signal }), loadKinds()]).then(([answer, known]) => {
    kinds = known;
    loaded = answer;
    const doc = answer.definition || {};
    const latest = answer.versions[answer.versions.length - 1];
    title.textContent = doc.name || id;
    mount(meta,
      h("code", { class: "chip" }, id),
      versionPicker(answer),
      h("span", { class: "muted", title: answer.hash }, `saved ${dateTime(answer.saved_at)}`),
      (doc.triggers || []).map((t) => h("span", { class: "chip chip-trigger" }, t.type || "?")),
      h("a", { class: "button small primary", href: link(`${base}/run`) }, "Run ▸"));
    if (doc.description) meta.append(h("p", { class: "description" }, doc.description));

    graphHost = h("div", { class: "graph-host" });
    graphNote = h("div");
    mount(panels.get("graph"), graphNote, graphHost);
    drawGraph(doc, false);

    const text = `${JSON.stringify(doc, null, 2)}\n`;
    const old = answer.version !== latest
      ? h("p", { class: "notice" }, `You are looking at version ${answer.version}; the latest is ${latest}. `
        + `Saving this text makes it version ${latest + 1}.`)
      : null;
    defEditor = createDefinitionEditor({
      workflowId: id,
      text,
      note: old,
      onChange: (value, parsed) => {
        if (parsed) drawGraph(parsed, value !== text);
      },
      onSaved: (saved) => {
        toast(saved.changed ? `Saved ${id} as version ${saved.version}` : "No change: nothing saved", "ok");
        // Reload on the new latest version (the graph, the version list and the text).
        if (saved.changed && version) navigate(`${base}/edit`);
        else if (saved.changed) reload();
      },
    });
    mount(panels.get("edit"), defEditor.element);
    mount(body, tabList, ...panels.values());
    showTab(current);
  }).catch((err) => {
    if (err.name === "AbortError") return;
    mount(body, errorBox(errorsFrom(err), { title: `Could not read ${id}` }));
  });

  return {
    update(next) {
      showTab(next.tab || "graph");
    },
  };
}
