// From a definition document to what the graph draws: per list of steps (a scope), its items
// with their rows (branches, error routes, details) and exits (arrows to step ids of the same
// scope or "end"). Nothing here knows a kind: each step is walked (walk.js) along its kind's
// plan (kinds.js, from the definition schema), which says where its step ids, nested lists of
// steps and workflow ids are, when the flow takes each way, and how they read. Pure and
// forgiving: the editor redraws from half-written documents, so a missing or odd field gives
// a plainer node, never an exception; a kind the schema does not list is a plain node that
// goes on to the following step.

import { kindsFromSchema } from "./kinds.js";
import { fill, shown } from "./label.js";
import { findsOf, labelOf } from "./walk.js";

const text = (v) => (typeof v === "string" ? v : v === undefined || v === null ? "" : JSON.stringify(v));
const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const NO_KINDS = kindsFromSchema(null);
// Rows in the order a reader follows them: the ways a step chooses, then where it fails to.
const RANK = { branch: 0, jump: 1, default: 2, next: 3, error: 4 };

/** The line under a step's id: its model's x-label; without one, its required plain fields. */
function detailOf(step, kind) {
  if (!kind) return "";
  if (kind.label !== undefined) return fill(kind.label, step);
  return kind.required
    .filter((name) => name !== "id" && name !== "type" && !kind.plan.props[name])
    .map((name) => (Object.hasOwn(step, name) && !isObject(step[name]) ? shown(step[name]) : ""))
    .filter(Boolean).join(" · ");
}

/**
 * scopeOf(steps, {kinds, keyPrefix, jsonPath}) -> {items: [...]}; kinds from kindsFromSchema().
 * item: {id, key, jsonPath, type, name, detail, output, rows, exits, scopes, href, linkTo}
 * key: the step's path in status records with iteration numbers dropped (`fan.b.fetch`,
 * `each.fetch`), to colour nodes by the status of the records that ran them.
 */
export function scopeOf(steps, { kinds = NO_KINDS, keyPrefix = "", jsonPath = "$.steps" } = {}) {
  const list = Array.isArray(steps) ? steps.filter(isObject) : [];
  const ids = new Set(list.map((s) => text(s.id)));
  const items = list.map((step, index) => {
    const id = text(step.id) || `#${index + 1}`;
    const key = keyPrefix ? `${keyPrefix}.${id}` : id;
    const path = `${jsonPath}[${index}]`;
    const following = index + 1 < list.length ? text(list[index + 1].id) : "end";
    const target = (t) => (t === "end" || ids.has(t) ? t : null);
    const kind = kinds.of(step.type);
    const finds = kind ? findsOf(step, kind.plan) : [];
    const rows = [];
    const exits = [];
    const scopes = [];
    let linkTo = null;
    // A kind the schema does not describe still goes on to the following step.
    let main = kind ? null : { kind: "next", target: following };
    for (const found of finds) {
      const { plan, env } = found;
      const flow = plan.flow || "jump";
      const rowKind = flow === "next" ? "jump" : flow; // a `next` deep in a field: a jump
      const label = labelOf(env);
      if (found.word !== undefined) {
        // A routing field holding a word: "continue" is worth a row, its default is not.
        if (found.word !== env.field.fieldDefault) {
          rows.push({ kind: rowKind, rank: RANK[flow], text: `${label}: ${found.word}` });
        }
      } else if (plan.role === "steps") {
        if (!Array.isArray(found.value)) continue;
        const holderId = env.holder !== step && typeof env.holder.id === "string" ? env.holder.id : "";
        scopes.push({
          label: (plan.label !== undefined && fill(plan.label, env.holder)) || holderId || label,
          scope: scopeOf(found.value, {
            kinds,
            keyPrefix: holderId ? `${key}.${holderId}` : key,
            jsonPath: `${path}${env.path}`,
          }),
        });
      } else if (plan.role === "workflow-id") {
        // The node links to the workflow its own field names (not one deep in its options).
        if (env.top && found.value !== undefined && linkTo === null) linkTo = text(found.value);
      } else if (plan.role === "step-id") {
        const absent = found.value === undefined;
        if (absent && !(env.top && env.field.optional && (flow === "next" || flow === "default"))) continue;
        if (flow === "next" && env.top) {
          main = { kind: absent ? "next" : "jump", target: absent ? following : found.value, label };
        } else if (absent) {
          rows.push({ kind: rowKind, rank: RANK[flow], text: `${label}: next step`, target: following });
        } else if (plan.keywords.includes(found.value)) {
          rows.push({ kind: rowKind, rank: RANK[flow], text: `${label}: ${found.value}` });
        } else {
          rows.push({ kind: rowKind, rank: RANK[flow], text: label, target: found.value });
        }
      }
    }
    if (main) {
      const resolved = target(main.target);
      if (resolved !== null) exits.push({ from: "main", kind: main.kind, target: resolved });
      else rows.push({ kind: "error", rank: RANK.next, text: `${main.label}: no step "${main.target}"`, unknown: true });
    }
    rows.sort((a, b) => a.rank - b.rank);
    const detail = detailOf(step, kind);
    const name = typeof step.name === "string" ? step.name : "";
    // With a name on the node's second line, the detail gets a row of its own.
    if (name && detail) rows.unshift({ kind: "info", text: detail });
    rows.forEach((row, r) => {
      delete row.rank;
      if (row.target === undefined) return;
      const resolved = target(row.target);
      if (resolved === null) row.unknown = true; // drawn with a warning, no arrow
      else exits.push({ from: r, kind: row.kind, target: resolved });
    });
    return {
      id,
      key,
      jsonPath: path,
      type: text(step.type) || "?",
      name,
      detail,
      output: typeof step.output === "string" ? step.output : "",
      rows,
      exits,
      scopes,
      linkTo,
      href: linkTo === null ? null : `#/workflows/${encodeURIComponent(linkTo)}`,
    };
  });
  return { items };
}

/** A record's path as a graph key: `each[3].fetch` -> `each.fetch`. */
export function keyOfPath(path) {
  return String(path || "").replace(/\[\d+\]/g, "");
}
