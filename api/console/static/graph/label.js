// The words on the graph come from the definition schema's `x-label` annotations, so a kind's
// wording lives with its model, not here. An `x-label` is a template or a list of them:
// `{field}` is that field of the object the label belongs to, `{field|text}` shows `text`
// when the field is empty. A template naming an empty field (without `|text`) is left out;
// the others are joined by " · ". So ["runs workflow {workflow_id}", "v{version}"] reads
// "runs workflow billing" or "runs workflow billing · v3".

const PLACEHOLDER = /\{([^{}|]+)(?:\|([^{}]*))?\}/g;

/** A field's value as a few words: lists joined (or counted, when they hold objects),
 * objects by their keys; "" when there is nothing to show. */
export function shown(value) {
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (Array.isArray(value)) {
    if (!value.length) return "";
    const scalar = value.every((v) => ["string", "number", "boolean"].includes(typeof v));
    return scalar ? value.join(", ") : String(value.length);
  }
  if (value && typeof value === "object") return Object.keys(value).join(", ");
  return "";
}

function fillOne(template, object) {
  let missing = false;
  const text = String(template).replace(PLACEHOLDER, (_, name, otherwise) => {
    const key = name.trim();
    // Own fields only: a template naming "constructor" must not reach the prototype.
    const value = object && typeof object === "object" && Object.hasOwn(object, key) ? object[key] : undefined;
    const words = shown(value);
    if (words !== "") return words;
    if (otherwise !== undefined) return otherwise;
    missing = true;
    return "";
  });
  return missing ? "" : text;
}

/** fill(templates, object) -> the label's text ("" when every template was left out). */
export function fill(templates, object) {
  const list = Array.isArray(templates) ? templates : [templates];
  return list.filter((t) => typeof t === "string").map((t) => fillOne(t, object))
    .filter(Boolean).join(" · ");
}
