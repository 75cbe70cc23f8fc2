// The definition's JSON editor wired to the API: syntax errors found here, everything else
// from POST /api/workflows/validate, each shown at the line its JSON path points to; saving
// is PUT /api/workflows/{id} (a new version when the text changed).

import { api } from "./api.js";
import { h, mount } from "./dom.js";
import { createEditor } from "./editor.js";
import { JsonSyntaxError, lineOfPath, parseWithPositions } from "./jsonpos.js";
import { errorsFrom } from "./ui.js";

const VALIDATE_DELAY_MS = 600;

/**
 * createDefinitionEditor({workflowId, text, onSaved, onChange}) ->
 * {element, editor, value, validate(), goToPath(path)}
 * workflowId null: a new definition, saved under the document's own `id`.
 */
export function createDefinitionEditor({ workflowId, text, onSaved, onChange, note }) {
  const original = text;
  const status = h("span", { class: "editor-status", role: "status", "aria-live": "polite" });
  const problems = h("div", { class: "problems" });
  let sequence = 0;
  let timer = null;
  let root = null; // the last good parse, for path -> line

  const editor = createEditor({
    label: "Definition JSON",
    value: text,
    onInput: (value) => {
      dirtyMark();
      clearTimeout(timer);
      timer = setTimeout(() => validate(), VALIDATE_DELAY_MS);
      onChange?.(value, parsedOrNull(value));
    },
  });

  function parsedOrNull(value) {
    try {
      return parseWithPositions(value).value;
    } catch {
      return null;
    }
  }

  function dirtyMark() {
    element.classList.toggle("dirty", editor.value !== original);
  }

  function show(list, { title }) {
    const markers = [];
    const items = list.map((e) => {
      const line = e.line ?? (root ? lineOfPath(editor.value, root, e.path) : 1);
      markers.push({ line, message: e.message });
      return h("li", { class: "problem", "data-line": line, "data-path": e.path || "" },
        h("button", { type: "button", class: "link problem-line", onclick: () => editor.goTo(line) }, `Line ${line}`),
        h("span", { class: "problem-message" }, e.message),
        e.path ? h("code", { class: "problem-path" }, e.path) : null,
        e.code ? h("code", { class: "problem-code" }, e.code) : null);
    });
    editor.setMarkers(markers);
    if (!list.length) {
      mount(problems);
      return;
    }
    mount(problems, h("div", { class: "errors", role: "alert" },
      h("p", { class: "errors-title" }, title),
      h("ol", { class: "problem-list" }, items)));
  }

  function setStatus(textContent, kind) {
    status.textContent = textContent;
    status.dataset.kind = kind;
  }

  /** Parse locally; null (and the syntax error shown) when the text is not JSON. */
  function parseLocally() {
    try {
      root = parseWithPositions(editor.value);
      return root;
    } catch (err) {
      if (!(err instanceof JsonSyntaxError)) throw err;
      root = null;
      show([{ code: "invalid_json", message: err.message, line: err.line, path: "" }], { title: "Not valid JSON" });
      setStatus("Not valid JSON", "error");
      return null;
    }
  }

  async function validate() {
    clearTimeout(timer);
    const mine = (sequence += 1);
    if (!parseLocally()) return false;
    setStatus("Checking…", "busy");
    try {
      const answer = await api.validate(editor.value);
      if (mine !== sequence) return false; // a newer check is under way
      const list = answer.errors || [];
      show(list, { title: `${list.length} problem${list.length === 1 ? "" : "s"}` });
      setStatus(answer.valid ? "Valid" : `${list.length} problem${list.length === 1 ? "" : "s"}`,
        answer.valid ? "ok" : "error");
      return answer.valid;
    } catch (err) {
      if (mine !== sequence) return false;
      show(errorsFrom(err), { title: "Could not validate" });
      setStatus("Could not validate", "error");
      return false;
    }
  }

  async function save() {
    clearTimeout(timer);
    sequence += 1; // any check in flight is now stale
    const parsed = parseLocally();
    if (!parsed) return;
    const id = workflowId ?? parsed.value?.id;
    if (id === undefined || id === null || id === "") {
      show([{ code: "missing_id", message: "A new definition needs an \"id\"", path: "$" }], { title: "Cannot save" });
      setStatus("Needs an id", "error");
      return;
    }
    saveButton.disabled = true;
    setStatus("Saving…", "busy");
    try {
      const saved = await api.save(String(id), editor.value);
      show([], { title: "" });
      setStatus(saved.changed ? `Saved as version ${saved.version}` : `Unchanged (version ${saved.version})`, "ok");
      onSaved?.(saved);
    } catch (err) {
      const list = errorsFrom(err);
      show(list, { title: `Not saved: ${list.length} problem${list.length === 1 ? "" : "s"}` });
      setStatus("Not saved", "error");
    } finally {
      saveButton.disabled = false;
    }
  }

  function format() {
    const parsed = parseLocally();
    if (!parsed) return;
    editor.setValue(`${JSON.stringify(parsed.value, null, 2)}\n`);
    dirtyMark();
    onChange?.(editor.value, parsed.value);
    validate();
  }

  const saveButton = h("button", { type: "button", class: "primary", onclick: save },
    workflowId ? "Save new version" : "Create definition");
  const element = h("section", { class: "definition-editor", "aria-label": "JSON editor" },
    note || null,
    h("div", { class: "toolbar" },
      saveButton,
      h("button", { type: "button", onclick: () => validate() }, "Validate"),
      h("button", { type: "button", onclick: format, title: "Re-indent the JSON (2 spaces)" }, "Format"),
      h("button", {
        type: "button",
        onclick: () => {
          editor.setValue(original);
          dirtyMark();
          onChange?.(original, parsedOrNull(original));
          validate();
        },
      }, "Revert"),
      status),
    editor.element,
    problems);

  return {
    element,
    editor,
    get value() {
      return editor.value;
    },
    validate,
    /** Put the caret on the line a JSON path points to (from a click on the graph). */
    goToPath(path) {
      const parsed = parseLocally();
      editor.goTo(parsed ? lineOfPath(editor.value, parsed, path) : 1);
    },
  };
}
