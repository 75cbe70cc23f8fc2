// The step timeline of an execution: one row per step record, indented by how deep its path
// is nested (`fan.b.fetch` sits inside parallel `fan`, branch `b`; `each[3].fetch` inside
// iteration 3 of `each`), with status, duration, attempts, reuse, usage, error and outputs.

import { h } from "./dom.js";
import { cost, count, dateTime, duration, elapsed, prettyValues, shortId } from "./format.js";
import { link } from "./router.js";
import { statusBadge } from "./ui.js";

/** One identity per record across the status answer and the log (both carry seq). */
export function recordKey(r) {
  return `${r.run_id || ""}|${r.seq}|${r.path || r.step_id}`;
}

/**
 * Merge the log's records (every finished step) with the status answer's (fresher, and
 * the ones still running). The status answer wins for a record both hold.
 */
export function mergeRecords(logSteps, statusSteps) {
  const byKey = new Map();
  const loose = (r) => `${r.seq}|${r.path || r.step_id}|${r.start_time}`;
  const seen = new Map();
  for (const r of logSteps || []) {
    byKey.set(recordKey(r), r);
    seen.set(loose(r), recordKey(r));
  }
  for (const r of statusSteps || []) {
    // The status answer may leave run_id out where the log has it: match on the rest.
    const existing = seen.get(loose(r));
    if (existing) byKey.delete(existing);
    byKey.set(recordKey(r), r);
    seen.set(loose(r), recordKey(r));
  }
  return [...byKey.values()].sort(
    (a, b) => Date.parse(a.start_time) - Date.parse(b.start_time) || a.seq - b.seq,
  );
}

/**
 * Depth of a record: one level per `[n]` iteration, and one per parallel branch (a segment
 * that follows a step recorded as `parallel`).
 */
export function depthOf(path, parallelPaths) {
  const segments = String(path || "").split(".");
  let depth = 0;
  let prefix = "";
  for (let i = 0; i < segments.length - 1; i += 1) {
    prefix = prefix ? `${prefix}.${segments[i]}` : segments[i];
    if (/\[\d+\]$/.test(segments[i])) depth += 1;
    else if (parallelPaths.has(prefix)) {
      depth += 1;
      i += 1; // the branch id
      prefix = `${prefix}.${segments[i]}`;
    }
  }
  return depth;
}

const ICON = { success: "✓", failed: "✕", running: "…", cancelled: "⏹" };

function usageLine(usage) {
  if (!usage || typeof usage !== "object") return null;
  const parts = [];
  if (usage.total_tokens !== undefined) parts.push(`${count(usage.total_tokens)} tokens`);
  const money = cost(usage.cost_usd);
  if (money) parts.push(money);
  return parts.length ? h("span", { class: "chip chip-usage" }, parts.join(" · ")) : null;
}

/**
 * renderTimeline(records, {openKeys: Set}) -> <ol>. `openKeys` remembers which outputs the
 * user expanded, so a poll redrawing the list leaves them open.
 */
export function renderTimeline(records, { openKeys = new Set() } = {}) {
  if (!records.length) return h("p", { class: "muted" }, "No steps yet.");
  const parallelPaths = new Set(records.filter((r) => r.type === "parallel").map((r) => r.path || r.step_id));
  return h("ol", { class: "timeline", "aria-label": "Steps" }, records.map((r) => {
    const path = r.path || r.step_id;
    const depth = depthOf(path, parallelPaths);
    const key = recordKey(r);
    const outputs = r.output_vars && Object.keys(r.output_vars).length ? r.output_vars : null;
    const details = outputs
      ? h("details", {
        class: "step-output",
        open: openKeys.has(key),
        ontoggle: (event) => (event.target.open ? openKeys.add(key) : openKeys.delete(key)),
      }, h("summary", {}, `output: ${Object.keys(outputs).join(", ")}`),
      h("pre", { class: "json" }, prettyValues(outputs)))
      : null;
    return h("li", {
      class: `step st-${r.status}`,
      "data-path": path,
      "data-status": r.status,
      "data-depth": String(depth),
      style: { "--depth": String(depth) },
    },
    h("span", { class: "step-icon", "aria-hidden": "true" }, ICON[r.status] || "•"),
    h("div", { class: "step-main" },
      h("div", { class: "step-head" },
        h("code", { class: "step-path" }, path),
        r.name && r.name !== r.step_id ? h("span", { class: "step-name" }, r.name) : null,
        h("span", { class: "chip chip-type" }, r.type),
        statusBadge(r.status),
        r.attempts > 1 ? h("span", { class: "chip chip-attempts" }, `${r.attempts} attempts`) : null,
        r.reused_from
          ? h("a", { class: "chip chip-reused", href: link(`/executions/${encodeURIComponent(r.reused_from)}`),
            title: `result reused from execution ${r.reused_from}` }, `reused from ${shortId(r.reused_from)}`)
          : null,
        usageLine(r.usage),
        h("span", { class: "step-time", "data-running-since": r.end_time ? null : r.start_time, title: `${dateTime(r.start_time)} → ${r.end_time ? dateTime(r.end_time) : "running"}` },
          duration(elapsed(r.start_time, r.end_time)))),
      r.error ? h("p", { class: "step-error" }, r.error_type ? h("strong", {}, `${r.error_type}: `) : null, r.error) : null,
      details));
  }));
}
