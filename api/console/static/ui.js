// Small shared widgets: status badges, the error list in the API's shape, toasts, spinners.

import { h } from "./dom.js";
import { prettyValues } from "./format.js";

const STATUS_LABEL = {
  running: "running",
  completed: "completed",
  success: "success",
  failed: "failed",
  cancelled: "cancelled",
  terminated: "terminated",
};

/** Worst first: how one mark reads for several records (a graph node run by every
 * iteration, a timeline group). */
const RANK = { failed: 4, running: 3, cancelled: 2, success: 1 };

/** The worse of two step statuses (null when neither is known). */
export function worseStatus(a, b) {
  if (!b) return a || null;
  if (!a) return b;
  return (RANK[b] || 0) > (RANK[a] || 0) ? b : a;
}

export function statusBadge(status) {
  const known = Object.hasOwn(STATUS_LABEL, status) ? status : "unknown";
  return h(
    "span",
    { class: `badge status-${known}`, "data-status": status || "" },
    status === "running" ? h("span", { class: "pulse", "aria-hidden": "true" }) : null,
    status || "unknown",
  );
}

/**
 * A box listing API errors: each `message`, its `code`, and its JSON `path` when given.
 * `role="alert"` so a screen reader announces a failure the user just caused.
 */
export function errorBox(errors, { title = "The API refused this", onPath } = {}) {
  if (!errors || !errors.length) return h("div", { class: "errors", hidden: true });
  return h(
    "div",
    { class: "errors", role: "alert" },
    h("p", { class: "errors-title" }, title),
    h(
      "ul",
      {},
      errors.map((e) =>
        h(
          "li",
          { class: "error-item", "data-code": e.code || "" },
          h("span", { class: "error-message" }, e.message || "error"),
          e.code ? h("code", { class: "error-code" }, e.code) : null,
          e.path
            ? onPath
              ? h("button", { type: "button", class: "link error-path", onclick: () => onPath(e) },
                e.path)
              : h("code", { class: "error-path" }, e.path)
            : null,
        ),
      ),
    ),
  );
}

/** Errors from anything thrown: an ApiError's list, or one entry for any other failure. */
export function errorsFrom(err) {
  if (err && Array.isArray(err.errors)) return err.errors;
  return [{ code: "console_error", message: String(err?.message || err) }];
}

export function warningBox(errors) {
  if (!errors || !errors.length) return null;
  return h(
    "div",
    { class: "warnings", role: "status" },
    h("ul", {}, errors.map((e) =>
      h("li", {}, h("code", {}, e.code || "warning"), " ", e.message || ""))),
  );
}

export function toast(message, kind = "info", ms = 5000) {
  const host = document.getElementById("toasts");
  if (!host) return;
  const item = h("div", { class: `toast toast-${kind}` }, message);
  host.append(item);
  setTimeout(() => item.remove(), ms);
}

export function spinner(label = "Loading…") {
  return h("p", { class: "loading", role: "status" }, h("span", { class: "spin", "aria-hidden": "true" }), label);
}

/** A page heading that takes focus after navigation, so keyboard and screen-reader users
 * land on the new content. */
export function pageTitle(text, ...extra) {
  return h("h1", { class: "page-title", tabindex: "-1" }, text, ...extra);
}

/** A `<pre>` of JSON, in a scroll box (summaries of large values as readable lines). */
export function jsonBlock(value, label) {
  return h("pre", { class: "json", tabindex: "0", "aria-label": label || "JSON" },
    prettyValues(value));
}
