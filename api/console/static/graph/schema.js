// The definition schema the graph reads its kinds from (kinds.js): the file the API exports
// to docs/, served beside the console's files (a test keeps the copy equal to it). Fetched
// once per page; a failed fetch is not kept, so the next graph tries again, and meanwhile
// steps are drawn as plain nodes rather than not at all.

import { kindsFromSchema } from "./kinds.js";

const SCHEMA_URL = new URL("../workflow-definition.schema.json", import.meta.url);
let loading = null;

/** loadKinds() -> Promise of kindsFromSchema(the definition schema); never rejects. */
export function loadKinds() {
  loading ||= fetch(SCHEMA_URL, { credentials: "omit", headers: { Accept: "application/json" } })
    .then((response) => {
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      return response.json();
    })
    .then(kindsFromSchema)
    .catch(() => {
      loading = null;
      return kindsFromSchema(null);
    });
  return loading;
}
