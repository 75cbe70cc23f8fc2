// The payload of the signal a run waits for, as a form: built from the schema the run
// announces (`waiting_payload_schema`: the waiting step's `payload_schema`, or the budget
// signal's) with schemaform.js, as the run form is from `inputs`; without a schema, a JSON box
// that starts from `{}`. Nothing is made up: no payload is suggested that the step never
// asked for. The API's 422 problems are shown on the fields their paths name.

import { h, uid } from "./dom.js";
import { createSchemaForm } from "./schemaform.js";

/** Where a signal's problems point: the payload itself is the document, `$`. */
const PAYLOAD = {
  root: "$",
  whole: "Payload (JSON object)",
  others: "Other fields (JSON object)",
  none: "The signal takes no fields.",
};

function isObjectSchema(schema) {
  if (!schema || typeof schema !== "object") return false;
  const type = Array.isArray(schema.type) ? schema.type : [schema.type];
  return type.includes("object") || (schema.type === undefined && typeof schema.properties === "object");
}

/** A JSON box for any payload; its problems are listed (no field to put them on). */
function jsonBox(initial) {
  const id = uid("payload");
  const text = h("textarea", { id, class: "mono", rows: 3, spellcheck: "false", value: initial });
  return {
    element: h("div", { class: "field" }, h("label", { for: id }, "Payload (JSON)"), text),
    read() {
      if (!text.value.trim()) return { values: undefined, errors: [] };
      try {
        return { values: JSON.parse(text.value), errors: [] };
      } catch (err) {
        return { values: undefined, errors: [{ code: "invalid_json", message: `The payload is not JSON: ${err.message}`, path: "$" }] };
      }
    },
    showErrors: (errors) => errors,
    clear() {},
  };
}

/** createPayloadForm(schema|null) -> {element, read() -> {values, errors}, showErrors, clear} */
export function createPayloadForm(schema) {
  if (isObjectSchema(schema)) return createSchemaForm(schema, PAYLOAD);
  return jsonBox(schema ? "" : "{}"); // a payload that is no object: nothing to start from
}
