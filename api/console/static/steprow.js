// One step record as a timeline row: status, type, duration (live while it runs), attempts,
// reuse, usage, error, an agent's tool calls (MCP tools as `server__tool`), outputs (folded),
// and for a sub_workflow a link to the child's own execution, whose steps are its own (the timeline links to them, it does not inline them).

import { h } from "./dom.js";
import { cost, count, dateTime, duration, elapsed, prettyValues, shortId } from "./format.js";
import { link } from "./router.js";
import { statusBadge } from "./ui.js";

export const ICON = { success: "✓", failed: "✕", running: "…", cancelled: "⏹" };

function usageLine(usage) {
  if (!usage || typeof usage !== "object") return null;
  const parts = [];
  if (usage.total_tokens !== undefined) parts.push(`${count(usage.total_tokens)} tokens`);
  const money = cost(usage.cost_usd);
  if (money) parts.push(money);
  return parts.length ? h("span", { class: "chip chip-usage" }, parts.join(" · ")) : null;
}

function executionLink(id, text, title, cls) {
  return h("a", { class: `chip ${cls}`, href: link(`/executions/${encodeURIComponent(id)}`), title }, text);
}

/**
 * The child execution a sub_workflow record started: the record names it
 * (`child_execution_id`). Runs of earlier versions named children
 * `<execution>-<step id>-<seq>` and did not record it, so for those it is derived that way.
 */
export function childExecutionId(executionId, record) {
  if (record.type !== "sub_workflow") return null;
  if (record.child_execution_id) return record.child_execution_id;
  if (!executionId || !Number.isInteger(record.seq)) return null;
  const path = String(record.path || record.step_id);
  const name = path.slice(path.lastIndexOf(".") + 1).replace(/\[/g, "-").replace(/\]/g, "");
  return `${executionId}-${name}-${record.seq}`;
}

/** An agent's tool calls in order, each marked done or failed (its error as the tooltip). */
function toolCalls(r) {
  if (r.type !== "agent") return null;
  const value = Object.values(r.output_vars || {})[0];
  const calls = value && Array.isArray(value.tool_calls) ? value.tool_calls : [];
  if (!calls.length) return null;
  return h("ul", { class: "tool-calls", "aria-label": "Tool calls" },
    calls.map((call) => {
      const failed = call && call.error !== undefined;
      return h("li", {
        class: `chip ${failed ? "chip-tool-failed" : "chip-tool"}`,
        title: failed ? String(call.error) : null,
      }, `${failed ? ICON.failed : ICON.success} ${String(call?.name ?? "?")}`);
    }));
}

function outputs(r, key, openKeys) {
  const vars = r.output_vars && Object.keys(r.output_vars).length ? r.output_vars : null;
  if (!vars) return null;
  return h("details", {
    class: "step-output",
    open: openKeys.has(key),
    ontoggle: (event) => (event.target.open ? openKeys.add(key) : openKeys.delete(key)),
  }, h("summary", {}, `output: ${Object.keys(vars).join(", ")}`),
  h("pre", { class: "json" }, prettyValues(vars)));
}

/** The head and body of a row (the <li> and its nested groups are the timeline's). */
export function stepMain(r, { key, openKeys, executionId }) {
  const path = r.path || r.step_id;
  const child = r.reused_from ? null : childExecutionId(executionId, r);
  return h("div", { class: "step-main" },
    h("div", { class: "step-head" },
      h("code", { class: "step-path" }, path),
      r.name && r.name !== r.step_id ? h("span", { class: "step-name" }, r.name) : null,
      h("span", { class: "chip chip-type" }, r.type),
      statusBadge(r.status),
      r.attempts > 1 ? h("span", { class: "chip chip-attempts" }, `${r.attempts} attempts`) : null,
      r.reused_from
        ? executionLink(r.reused_from, `reused from ${shortId(r.reused_from)}`,
          `result reused from execution ${r.reused_from}`, "chip-reused")
        : null,
      child ? executionLink(child, "child execution ↗", `its steps: execution ${child}`, "chip-child") : null,
      usageLine(r.usage),
      h("span", {
        class: "step-time",
        "data-running-since": r.end_time ? null : r.start_time,
        title: `${dateTime(r.start_time)} → ${r.end_time ? dateTime(r.end_time) : "running"}`,
      }, duration(elapsed(r.start_time, r.end_time)))),
    r.error ? h("p", { class: "step-error" }, r.error_type ? h("strong", {}, `${r.error_type}: `) : null, r.error) : null,
    toolCalls(r),
    outputs(r, key, openKeys));
}
