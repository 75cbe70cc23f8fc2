// From a definition document to what the graph draws: per list of steps (a scope), its items
// with their rows (branches, error routes, details) and exits (arrows to step ids of the same
// scope or "end"). Pure and forgiving: the editor redraws from half-written documents, so a
// missing or odd field gives a plainer node, never an exception.

const text = (v) => (typeof v === "string" ? v : v === undefined || v === null ? "" : JSON.stringify(v));
const isList = Array.isArray;

/** One line saying what a step does, from the fields that matter most for its type. */
function detailOf(step) {
  switch (step.type) {
    case "ai":
    case "agent": {
      const models = [step.model, ...(isList(step.models) ? step.models : [])].filter(Boolean);
      const tools = isList(step.tools) ? ` · ${step.tools.length} tools` : "";
      return `${models.join(" → ") || "model?"}${tools}`;
    }
    case "http":
      return `${text(step.method || "GET").toUpperCase()} ${text(step.url)}`;
    case "set": {
      const names = [
        ...Object.keys(step.values && typeof step.values === "object" ? step.values : {}),
        ...Object.keys(step.compute && typeof step.compute === "object" ? step.compute : {}),
      ];
      return names.length ? `sets ${names.join(", ")}` : "";
    }
    case "delay":
      return step.until !== undefined ? `until ${text(step.until)}` : `${text(step.seconds)} s`;
    case "wait_for_signal":
      return `signal "${text(step.signal)}"${
        step.timeout_seconds ? ` · times out after ${step.timeout_seconds} s` : ""}`;
    case "fail":
      return text(step.message);
    case "sub_workflow":
      return `runs workflow ${text(step.workflow_id)}${step.version ? ` v${step.version}` : ""}`;
    case "parallel": {
      const n = isList(step.branches) ? step.branches.length : 0;
      return `${n} branches${step.fail_fast === false ? "" : " · fail fast"}`;
    }
    case "foreach":
      return `each ${step.as || "item"} in ${text(step.items)}${
        step.concurrency ? ` · ${step.concurrency} at once` : ""}`;
    default:
      return "";
  }
}

function errorRows(step) {
  const route = step.on_error;
  if (route === undefined || route === "fail") return [];
  if (route === "continue") return [{ kind: "error", text: "on error: continue" }];
  if (route && typeof route === "object" && !isList(route)) {
    return [{ kind: "error", text: "on error", target: route.next }];
  }
  if (isList(route)) {
    return route.map((rule) => {
      const errors = isList(rule?.errors) && rule.errors.length
        ? `on ${rule.errors.join(", ")}` : "on any error";
      const then = rule?.then;
      if (then === "continue" || then === "fail") return { kind: "error", text: `${errors}: ${then}` };
      return { kind: "error", text: errors, target: then };
    });
  }
  return [];
}

/**
 * scopeOf(steps, {keyPrefix, jsonPath}) -> {items: [...]}.
 * item: {id, key, jsonPath, type, name, detail, output, rows, exits, scopes, href}
 * key: the step's path in status records with iteration numbers dropped (`fan.b.fetch`,
 * `each.fetch`), to colour nodes by the status of the records that ran them.
 */
export function scopeOf(steps, { keyPrefix = "", jsonPath = "$.steps" } = {}) {
  const list = isList(steps) ? steps.filter((s) => s && typeof s === "object") : [];
  const ids = new Set(list.map((s) => text(s.id)));
  const items = list.map((step, index) => {
    const id = text(step.id) || `#${index + 1}`;
    const key = keyPrefix ? `${keyPrefix}.${id}` : id;
    const path = `${jsonPath}[${index}]`;
    const following = index + 1 < list.length ? text(list[index + 1].id) : "end";
    const target = (t) => (t === "end" || ids.has(t) ? t : null);
    const rows = [];
    const exits = [];
    const detail = detailOf(step);
    const name = typeof step.name === "string" ? step.name : "";
    // With a name on the node's second line, the detail gets a row of its own.
    if (name && detail) rows.push({ kind: "info", text: detail });
    if (step.type === "condition") {
      (isList(step.branches) ? step.branches : []).forEach((branch) => {
        rows.push({ kind: "branch", text: `if ${text(branch?.when)}`, target: branch?.next });
      });
      rows.push({
        kind: "default",
        text: step.default ? "otherwise" : "otherwise: next step",
        target: step.default || following,
      });
    } else if (step.type !== "fail") {
      const explicit = typeof step.next === "string";
      const main = target(explicit ? step.next : following);
      exits.push({ from: "main", kind: explicit ? "jump" : "next", target: main });
      if (main === null) rows.push({ kind: "error", text: `next: no step "${step.next}"`, unknown: true });
    }
    rows.push(...errorRows(step));
    rows.forEach((row, r) => {
      if (row.target === undefined) return;
      const resolved = target(row.target);
      if (resolved === null) row.unknown = true; // drawn with a warning, no arrow
      else exits.push({ from: r, kind: row.kind, target: resolved });
    });
    const scopes = [];
    if (step.type === "parallel" && isList(step.branches)) {
      step.branches.forEach((branch, b) => {
        const branchId = text(branch?.id) || `#${b + 1}`;
        scopes.push({
          label: `branch ${branchId}`,
          scope: scopeOf(branch?.steps, {
            keyPrefix: `${key}.${branchId}`,
            jsonPath: `${path}.branches[${b}].steps`,
          }),
        });
      });
    } else if (step.type === "foreach") {
      scopes.push({
        label: `for each ${step.as || "item"}`,
        scope: scopeOf(step.steps, { keyPrefix: key, jsonPath: `${path}.steps` }),
      });
    }
    return {
      id,
      key,
      jsonPath: path,
      type: text(step.type) || "?",
      name,
      detail,
      output: typeof step.output === "string" ? step.output : "",
      rows,
      exits: exits.filter((e) => e.target !== null),
      scopes,
      href: step.type === "sub_workflow" && step.workflow_id !== undefined
        ? `#/workflows/${encodeURIComponent(text(step.workflow_id))}` : null,
    };
  });
  return { items };
}

/** A record's path as a graph key: `each[3].fetch` -> `each.fetch`. */
export function keyOfPath(path) {
  return String(path || "").replace(/\[\d+\]/g, "");
}
