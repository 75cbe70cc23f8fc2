// A new definition: the JSON editor on a small template, saved under the document's own id.

import { createDefinitionEditor } from "../defeditor.js";
import { h, mount } from "../dom.js";
import { link, navigate } from "../router.js";
import { pageTitle, toast } from "../ui.js";

const TEMPLATE = {
  id: "my-workflow",
  name: "My workflow",
  inputs: {
    type: "object",
    required: ["name"],
    properties: { name: { type: "string", minLength: 1 } },
  },
  steps: [
    { id: "greet", type: "set", values: { greeting: "Hello {name}" } },
    { id: "approval", type: "wait_for_signal", signal: "approval", output: "approval" },
  ],
};

export function newDefinitionView(root) {
  const editor = createDefinitionEditor({
    workflowId: null,
    text: `${JSON.stringify(TEMPLATE, null, 2)}\n`,
    onSaved: (saved) => {
      toast(`Created ${saved.workflow_id} (version ${saved.version})`, "ok");
      navigate(`/workflows/${encodeURIComponent(saved.workflow_id)}`);
    },
  });
  mount(root,
    h("nav", { class: "breadcrumb", "aria-label": "Breadcrumb" }, h("a", { href: link("/workflows") }, "Definitions"), " / new"),
    h("div", { class: "page-head" }, pageTitle("New definition")),
    h("p", { class: "muted" }, "Saved under its \"id\". Problems appear at their line as you type."),
    editor.element);
  editor.validate();
}
