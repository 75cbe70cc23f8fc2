// The JSON API, called with the session's key. Every failure becomes an ApiError carrying the
// API's own `{"errors": [{"code", "message", "path"}]}` list, so views render one shape.

import { getKey } from "./session.js";

const ROOT = document.querySelector('meta[name="wfe-root"]')?.content || "";

export class ApiError extends Error {
  constructor(status, errors) {
    super(errors.map((e) => e.message).join("; ") || `HTTP ${status}`);
    this.status = status;
    this.errors = errors;
  }
}

/** Fired on 401 so the app can ask for a key again, whatever view made the call. */
export const UNAUTHORIZED_EVENT = "wfe:unauthorized";

function errorsOf(status, statusText, body, headers) {
  const listed = body && Array.isArray(body.errors) ? body.errors : null;
  const errors = listed && listed.length
    ? listed
    : [{ code: `http_${status}`, message: `${status} ${statusText || "error"}` }];
  const retry = headers.get("Retry-After");
  if (status === 429 && retry) {
    return errors.map((e) => ({ ...e, message: `${e.message} (retry in ${retry} s)` }));
  }
  return errors;
}

/**
 * Call the API. `body` is sent as JSON (a string is sent as is: the editor sends its text
 * unchanged, so the server judges exactly what the user wrote). Returns the parsed answer.
 */
export async function request(method, path, { body, query, signal, key } = {}) {
  const url = new URL(ROOT + path, window.location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  const headers = { Accept: "application/json" };
  const token = key ?? getKey();
  if (token) headers.Authorization = `Bearer ${token}`;
  const init = { method, headers, signal, credentials: "omit", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = typeof body === "string" ? body : JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, [{ code: "network", message: `Cannot reach the API (${err.message})` }]);
  }
  const text = await response.text();
  let parsed = null;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = null;
    }
  }
  if (!response.ok) {
    const error = new ApiError(
      response.status,
      errorsOf(response.status, response.statusText, parsed, response.headers),
    );
    if (response.status === 401 && key === undefined) {
      window.dispatchEvent(new CustomEvent(UNAUTHORIZED_EVENT, { detail: error }));
    }
    throw error;
  }
  return parsed;
}

const enc = encodeURIComponent;

export const api = {
  listWorkflows: (opts) => request("GET", "/api/workflows", opts),
  getWorkflow: (id, version, opts) =>
    request("GET", `/api/workflows/${enc(id)}`, { ...opts, query: { version } }),
  validate: (text) => request("POST", "/api/workflows/validate", { body: text }),
  save: (id, text) => request("PUT", `/api/workflows/${enc(id)}`, { body: text }),
  run: (workflowId, inputVars) =>
    request("POST", "/api/workflows/run", {
      body: { workflow_id: workflowId, input_vars: inputVars },
    }),
  listExecutions: (query, opts) => request("GET", "/api/executions", { ...opts, query }),
  getExecution: (id, opts) => request("GET", `/api/executions/${enc(id)}`, opts),
  getLog: (id, opts) => request("GET", `/api/executions/${enc(id)}/log`, opts),
  cancel: (id, reason) =>
    request("POST", `/api/executions/${enc(id)}/cancel`, { body: reason ? { reason } : {} }),
  signal: (id, name, payload) =>
    request("POST", `/api/executions/${enc(id)}/signals/${enc(name)}`, {
      body: payload === undefined ? "" : JSON.stringify(payload),
    }),
  // The endpoint may not exist on an older API: its 404/405 is shown as is.
  rerun: (id, { fromStep, version } = {}) => {
    const body = {};
    if (fromStep) body.from_step = fromStep;
    if (version) body.version = version;
    return request("POST", `/api/executions/${enc(id)}/rerun`, { body });
  },
  test: (id, file) => request("POST", `/api/workflows/${enc(id)}/test`, { body: file }),
  /** Checks a key without raising the app-wide 401 event (the sign-in form shows it). */
  checkKey: (key) => request("GET", "/api/workflows", { key }),
};
