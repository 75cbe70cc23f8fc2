// The Tests tab of a definition: its test file (docs/testing.md), kept in this browser for
// the workflow, run through POST /api/workflows/{id}/test; each case's result with its
// problems in words and a link to its (test) run. A refused file shows each problem's path.

import { api } from "../api.js";
import { h, mount } from "../dom.js";
import { link } from "../router.js";
import { errorBox, errorsFrom } from "../ui.js";

const STORAGE_PREFIX = "wfe.console.tests.";

function starter(workflowId) {
  return {
    workflow_id: workflowId,
    cases: [{ name: "first case", input_vars: {}, mocks: {}, signals: [], expect: { status: "completed" } }],
  };
}

function savedText(workflowId) {
  try {
    const text = localStorage.getItem(STORAGE_PREFIX + workflowId);
    if (text) return text;
  } catch {
    // storage disabled: start from the skeleton
  }
  return `${JSON.stringify(starter(workflowId), null, 2)}\n`;
}

function save(workflowId, text) {
  try {
    localStorage.setItem(STORAGE_PREFIX + workflowId, text);
  } catch {
    // storage disabled: the run still goes ahead
  }
}

function caseRow(result) {
  const passed = result.status === "passed";
  return h("li", { class: `test-case ${passed ? "passed" : "failed"}`, "data-case": result.name },
    h("span", { class: `badge status-${passed ? "completed" : "failed"}` }, result.status),
    " ", h("strong", {}, result.name),
    h("span", { class: "muted" }, ` ${result.seconds.toFixed(2)} s `),
    result.execution_id
      ? h("a", { href: link(`/executions/${encodeURIComponent(result.execution_id)}`) }, "its run")
      : null,
    result.problems.length
      ? h("ul", { class: "test-problems" }, result.problems.map((p) => h("li", {}, p)))
      : null);
}

/** The panel: the file's text, Run, and the results. */
export function testsPanel({ workflowId }) {
  const text = h("textarea", {
    class: "mono test-file", rows: 18, spellcheck: "false",
    "aria-label": "Test file (JSON)",
  });
  text.value = savedText(workflowId);
  const results = h("div", { class: "test-results", "aria-live": "polite" });
  const button = h("button", { type: "button", class: "primary" }, "Run cases");
  button.addEventListener("click", async () => {
    save(workflowId, text.value);
    let document;
    try {
      document = JSON.parse(text.value);
    } catch (err) {
      mount(results, errorBox([{ code: "invalid_json", message: `not valid JSON: ${err.message}` }],
        { title: "The file is not JSON" }));
      return;
    }
    button.disabled = true;
    button.textContent = "Running…";
    mount(results);
    try {
      const report = await api.test(workflowId, document);
      mount(results,
        h("p", { class: "test-summary" }, `${report.passed} passed, ${report.failed} failed`),
        h("ul", { class: "test-cases" }, report.cases.map(caseRow)));
    } catch (err) {
      mount(results, errorBox(errorsFrom(err), { title: "The test file was refused" }));
    } finally {
      button.disabled = false;
      button.textContent = "Run cases";
    }
  });
  return h("div", { class: "card tests" },
    h("h2", {}, `Test ${workflowId}`),
    h("p", { class: "muted" },
      "Cases run as real runs with mocked steps and virtual time; nothing calls out. "
      + "The file is kept in this browser. See docs/testing.md."),
    text,
    h("div", { class: "actions" }, button),
    results);
}
