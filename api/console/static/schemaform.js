// A form from a JSON Schema (a definition's `inputs`, a signal's `payload_schema`): one field
// per top-level property (text, number, checkbox, select for `enum`, JSON text for objects and
// arrays), required fields marked, defaults filled in. Values are read back typed, and errors
// with a path under the form's root (`$.input_vars.name` for a run's inputs) are shown on the
// field they name.

import { h, uid } from "./dom.js";

/** What the run form calls things; a signal's payload form says its own. */
const INPUTS = {
  root: "$.input_vars",
  whole: "Inputs (JSON object)",
  others: "Other inputs (JSON object)",
  none: "This workflow takes no inputs.",
};

function mainType(schema) {
  const t = schema?.type;
  if (Array.isArray(t)) return t.find((x) => x !== "null") || "string";
  if (typeof t === "string") return t;
  if (Array.isArray(schema?.enum)) return "enum";
  return "json"; // no type given: any JSON value
}

function control(name, schema, required, id) {
  const type = mainType(schema);
  const hasDefault = schema && Object.hasOwn(schema, "default");
  const initial = hasDefault ? schema.default : undefined;
  if (Array.isArray(schema?.enum)) {
    // Options carry JSON so a number or boolean enum comes back as that type.
    const options = schema.enum.map((v) =>
      h("option", { value: JSON.stringify(v), selected: hasDefault && JSON.stringify(v) === JSON.stringify(initial) },
        typeof v === "string" ? v : JSON.stringify(v)));
    // With a default, leaving it out means the default: no "not set" choice is needed.
    if (!hasDefault) options.unshift(h("option", { value: "" }, required ? "Choose…" : "(not set)"));
    return { el: h("select", { id, name }, options), read: (el) => (el.value === "" ? undefined : JSON.parse(el.value)) };
  }
  if (type === "boolean") {
    if (required || hasDefault) {
      return {
        el: h("input", { id, name, type: "checkbox", checked: initial === true }),
        read: (el) => el.checked,
        checkbox: true,
      };
    }
    // An optional flag with no default can also be left out, which a checkbox cannot say.
    return {
      el: h("select", { id, name },
        h("option", { value: "" }, "(not set)"),
        h("option", { value: "true" }, "true"),
        h("option", { value: "false" }, "false")),
      read: (el) => (el.value === "" ? undefined : el.value === "true"),
    };
  }
  if (type === "integer" || type === "number") {
    return {
      el: h("input", {
        id, name, type: "number", inputmode: type === "integer" ? "numeric" : "decimal",
        step: type === "integer" ? "1" : "any",
        min: schema.minimum, max: schema.maximum,
        value: initial === undefined ? "" : String(initial),
      }),
      read: (el) => {
        if (el.value.trim() === "") return undefined;
        const n = Number(el.value);
        if (Number.isNaN(n)) throw new Error("not a number");
        return n;
      },
    };
  }
  if (type === "string") {
    const long = (schema.maxLength ?? 0) > 200 || schema.format === "textarea";
    const attrs = { id, name, value: initial === undefined ? "" : String(initial), autocomplete: "off" };
    return {
      el: long ? h("textarea", { ...attrs, rows: 4 }) : h("input", { ...attrs, type: "text" }),
      // An empty box is "not given": its default applies, or a required field says so.
      read: (el) => (el.value === "" ? undefined : el.value),
    };
  }
  // object, array, or untyped: JSON text.
  const placeholder = type === "array" ? "[ ]" : type === "object" ? "{ }" : "JSON value";
  return {
    el: h("textarea", {
      id, name, rows: 4, class: "mono", spellcheck: "false", placeholder,
      value: initial === undefined ? "" : JSON.stringify(initial, null, 2),
    }),
    read: (el) => {
      if (el.value.trim() === "") return undefined;
      try {
        return JSON.parse(el.value);
      } catch (err) {
        throw new Error(`not valid JSON: ${err.message}`);
      }
    },
  };
}

/** The field a path belongs to: `$.input_vars.ticket.subject` -> "ticket". */
function fieldOf(path, message, names, root) {
  const rest = String(path || "").startsWith(root) ? path.slice(root.length) : null;
  if (rest === null) return null;
  if (rest.startsWith(".")) {
    const tail = rest.slice(1);
    const sorted = [...names].sort((a, b) => b.length - a.length);
    return sorted.find((n) => tail === n || tail.startsWith(`${n}.`) || tail.startsWith(`${n}[`)) ?? null;
  }
  // jsonschema names a missing required property at the object, in its message (which the
  // API may begin with its own words: "the 'approval' payload does not fit …: 'by' is …").
  const missing = /'([^']+)' is a required property/.exec(message || "");
  if (missing && names.includes(missing[1])) return missing[1];
  return null;
}

/**
 * createSchemaForm(schema, words = INPUTS) -> {element, read() -> {values, errors},
 * showErrors(errors) -> rest}. `errors` are the API's items; `showErrors` returns the ones
 * no field could take. `words`: {root (the JSON path of the value), whole, others, none}.
 */
export function createSchemaForm(schema, words = INPUTS) {
  const root = words.root;
  const properties = schema && typeof schema.properties === "object" ? schema.properties : {};
  const required = new Set(Array.isArray(schema?.required) ? schema.required : []);
  const fields = new Map();
  const rows = [];
  for (const [name, prop] of Object.entries(properties)) {
    const id = uid("input");
    const hintId = `${id}-hint`;
    const errorId = `${id}-error`;
    const isRequired = required.has(name);
    const made = control(name, prop || {}, isRequired, id);
    made.el.setAttribute("aria-describedby", `${hintId} ${errorId}`);
    if (isRequired) made.el.setAttribute("aria-required", "true");
    const error = h("p", { class: "field-error", id: errorId, hidden: true });
    const type = mainType(prop || {});
    const hintText = [prop?.description, type === "json" || type === "object" || type === "array" ? `JSON ${type === "json" ? "value" : type}` : null]
      .filter(Boolean).join(" · ");
    const labelText = prop?.title || name;
    const label = h("label", { for: id }, labelText,
      labelText !== name ? h("code", { class: "field-name" }, name) : null,
      isRequired ? h("span", { class: "required", title: "required" }, " *") : null);
    const row = h("div", { class: made.checkbox ? "field field-check" : "field", "data-field": name },
      made.checkbox ? [made.el, label] : [label, made.el],
      h("p", { class: "hint", id: hintId }, hintText),
      error);
    fields.set(name, { ...made, error, isRequired });
    rows.push(row);
  }
  const open = !Object.keys(properties).length || schema?.additionalProperties;
  let extra = null;
  if (open) {
    const id = uid("input");
    const error = h("p", { class: "field-error", id: `${id}-error`, hidden: true });
    const el = h("textarea", {
      id, rows: 5, class: "mono", spellcheck: "false", placeholder: "{ }",
      "aria-describedby": `${id}-error`,
    });
    extra = { el, error };
    rows.push(h("div", { class: "field", "data-field": "*" },
      h("label", { for: id }, Object.keys(properties).length ? words.others : words.whole),
      el, error));
  }
  const element = h("div", { class: "schema-form" }, rows.length ? rows : h("p", { class: "muted" }, words.none));

  function setError(field, message) {
    field.error.textContent = message || "";
    field.error.hidden = !message;
    field.el.toggleAttribute("aria-invalid", Boolean(message));
    if (message) field.el.setAttribute("aria-invalid", "true");
  }

  function clear() {
    for (const field of fields.values()) setError(field, "");
    if (extra) setError(extra, "");
  }

  return {
    element,
    /** The typed values, or the client-side problems (required, bad JSON) as API errors. */
    read() {
      clear();
      const values = {};
      const errors = [];
      if (extra && extra.el.value.trim()) {
        try {
          const parsed = JSON.parse(extra.el.value);
          if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("must be a JSON object");
          Object.assign(values, parsed);
        } catch (err) {
          errors.push({ code: "invalid_json", message: err.message, path: root, field: "*" });
        }
      }
      for (const [name, field] of fields) {
        try {
          const value = field.read(field.el);
          if (value === undefined) {
            if (field.isRequired) errors.push({ code: "required", message: "required", path: `${root}.${name}` });
          } else {
            values[name] = value;
          }
        } catch (err) {
          errors.push({ code: "invalid_value", message: err.message, path: `${root}.${name}` });
        }
      }
      return { values, errors };
    },
    showErrors(errors) {
      clear();
      const rest = [];
      let first = null;
      for (const e of errors) {
        const name = e.field === "*" ? "*" : fieldOf(e.path, e.message, [...fields.keys()], root);
        const field = name === "*" ? extra : name ? fields.get(name) : null;
        if (!field) {
          rest.push(e);
          continue;
        }
        const before = field.error.hidden ? "" : `${field.error.textContent}; `;
        setError(field, before + e.message);
        first ||= field.el;
      }
      first?.focus();
      return rest;
    },
    clear,
  };
}
