// The run form: fields from the definition's `inputs` schema; POST /api/workflows/run; the
// API's 422 problems shown on the fields they name; on success, off to the execution.

import { api } from "../api.js";
import { h, mount } from "../dom.js";
import { navigate } from "../router.js";
import { createSchemaForm } from "../schemaform.js";
import { errorBox, errorsFrom, toast } from "../ui.js";

export function runForm({ workflowId, definition, version }) {
  const form = createSchemaForm(definition?.inputs || null);
  const errors = h("div", { class: "form-errors" });
  const button = h("button", { type: "submit", class: "primary" }, "Start run");
  const element = h("form", {
    class: "card run-form",
    novalidate: true, // the API's own messages, shown on the fields, not the browser's
    onsubmit: async (event) => {
      event.preventDefault();
      mount(errors);
      const { values, errors: local } = form.read();
      if (local.length) {
        const rest = form.showErrors(local);
        if (rest.length) mount(errors, errorBox(rest, { title: "Check the inputs" }));
        return;
      }
      button.disabled = true;
      button.textContent = "Starting…";
      try {
        const started = await api.run(workflowId, values);
        // 202 may still carry warnings (no worker polls the queue, ...): keep them visible.
        for (const warning of started.errors || []) toast(`${warning.code}: ${warning.message}`, "warn", 12000);
        toast(`Started ${workflowId} v${started.definition_version ?? version}`, "ok");
        navigate(`/executions/${encodeURIComponent(started.execution_id)}`);
      } catch (err) {
        const list = errorsFrom(err);
        const rest = form.showErrors(list);
        if (rest.length || !list.length) mount(errors, errorBox(rest, { title: "The run was not started" }));
        else mount(errors, h("p", { class: "field-error", role: "alert" }, "The run was not started: see the fields above."));
      } finally {
        button.disabled = false;
        button.textContent = "Start run";
      }
    },
  },
  h("h2", {}, `Run ${workflowId}`, h("span", { class: "muted" }, ` · v${version}`)),
  definition?.description ? h("p", { class: "muted" }, definition.description) : null,
  form.element,
  errors,
  h("div", { class: "actions" }, button));
  return element;
}
