// The step timeline of an execution: one row per step record, nested the way the run was.
// A path says where a record ran (`fan.b.fetch`: parallel `fan`, branch `b`; `each[3].fetch`:
// iteration 3 of foreach `each`; `outer[1].inner[2].calc` composes both), so records are
// grouped by path prefix: under a foreach's row one group per iteration (`each[3]`), under a
// parallel's row one per branch (`fan.b`), each holding its own steps in the order they ran.
// Sorting by start time alone would put every grandchild under the last iteration.

import { h } from "./dom.js";
import { ICON, stepMain } from "./steprow.js";
import { worseStatus } from "./ui.js";

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

const ITERATION = /^(.*)\[(\d+)\]$/;

/**
 * The group a path belongs to: null at the top level, else {key, owner, kind, index}.
 * `outer[1].inner[2].calc` -> key `outer[1].inner[2]`, owner `outer[1].inner`, iteration 2;
 * `fan.b.fetch` -> key `fan.b`, owner `fan`, branch `b`.
 */
export function groupOf(path) {
  const cut = path.lastIndexOf(".");
  if (cut < 0) return null;
  const key = path.slice(0, cut);
  const iteration = ITERATION.exec(key);
  if (iteration) return { key, owner: iteration[1], kind: "iteration", index: Number(iteration[2]) };
  const ownerCut = key.lastIndexOf(".");
  // A prefix of one plain segment is no shape the engine writes; kept as a scope of its own.
  if (ownerCut < 0) return { key, owner: key, kind: "scope", index: null };
  return { key, owner: key.slice(0, ownerCut), kind: "branch", index: null };
}

/**
 * groupRecords(records in run order) -> [node]; node: {path, record|null, groups: [group]};
 * group: {key, kind, index, nodes: [node]}. A record joins the group of the latest record
 * of its owner's path (a foreach run again by a loop holds its own iterations). An owner
 * with no record (not in the log yet) gets a node without one, so its steps still nest.
 */
export function groupRecords(records) {
  const top = [];
  const latest = new Map(); // path -> the newest node for it

  function nodeFor(path, record) {
    const waiting = latest.get(path);
    if (record && waiting && !waiting.record) {
      waiting.record = record; // a stand-in made for its children, now with its record
      return waiting;
    }
    const node = { path, record, groups: [], byKey: new Map() };
    const scope = groupOf(path);
    if (!scope) top.push(node);
    else {
      const owner = latest.get(scope.owner) || nodeFor(scope.owner, null);
      let group = owner.byKey.get(scope.key);
      if (!group) {
        group = { key: scope.key, kind: scope.kind, index: scope.index, nodes: [] };
        owner.byKey.set(scope.key, group);
        owner.groups.push(group);
      }
      group.nodes.push(node);
    }
    latest.set(path, node);
    return node;
  }

  for (const r of records) nodeFor(String(r.path || r.step_id), r);
  const tidy = (nodes) => nodes.map(({ byKey, ...node }) => {
    // Iterations in item order (concurrent ones start in any order); branches as they ran.
    if (node.groups.every((g) => g.kind === "iteration")) node.groups.sort((a, b) => a.index - b.index);
    node.groups = node.groups.map((g) => ({ ...g, nodes: tidy(g.nodes) }));
    return node;
  });
  return tidy(top);
}

/** How a group reads: the worst status of every record inside it. */
function worstStatus(nodes) {
  return nodes.reduce((worst, node) => worseStatus(
    worseStatus(worst, node.record?.status), worstStatus(node.groups.flatMap((g) => g.nodes))), null);
}

function countRecords(nodes) {
  return nodes.reduce((n, node) => n + (node.record ? 1 : 0)
    + node.groups.reduce((m, g) => m + countRecords(g.nodes), 0), 0);
}

function drawGroup(group, depth, state) {
  const status = worstStatus(group.nodes);
  const n = countRecords(group.nodes);
  const label = group.kind === "iteration" ? `iteration ${group.index}`
    : group.kind === "branch" ? `branch ${group.key.slice(group.key.lastIndexOf(".") + 1)}` : "scope";
  return h("li", { class: "step-group", "data-group": group.key, "data-status": status || "" },
    h("details", {
      open: !state.closedGroups.has(group.key),
      ontoggle: (event) => (event.target.open
        ? state.closedGroups.delete(group.key) : state.closedGroups.add(group.key)),
    },
    h("summary", { class: `group-head st-${status || "none"}` },
      h("span", { class: "step-icon", "aria-hidden": "true" }, ICON[status] || "•"),
      h("code", { class: "group-key" }, group.key),
      h("span", { class: "muted" }, `${label} · ${n} step${n === 1 ? "" : "s"}`)),
    h("ol", { class: "step-scope" }, group.nodes.map((node) => drawNode(node, depth + 1, state)))));
}

function drawNode(node, depth, state) {
  const r = node.record;
  const groups = node.groups.length
    ? h("ol", { class: "step-groups", "aria-label": `Inside ${node.path}` },
      node.groups.map((g) => drawGroup(g, depth, state)))
    : null;
  if (!r) {
    return h("li", { class: "step st-unknown", "data-path": node.path, "data-depth": String(depth) },
      h("span", { class: "step-icon", "aria-hidden": "true" }, "•"),
      h("div", { class: "step-main" }, h("div", { class: "step-head" },
        h("code", { class: "step-path" }, node.path),
        h("span", { class: "muted" }, "(its own record is not in the log yet)"))),
      groups);
  }
  const key = recordKey(r);
  return h("li", {
    class: `step st-${r.status}`,
    "data-path": node.path,
    "data-status": r.status,
    "data-depth": String(depth),
  },
  h("span", { class: "step-icon", "aria-hidden": "true" }, ICON[r.status] || "•"),
  stepMain(r, { key, openKeys: state.openKeys, executionId: state.executionId }),
  groups);
}

/**
 * renderTimeline(records, {openKeys, closedGroups, executionId}) -> <ol>. The two sets
 * remember which outputs the user opened and which groups they folded, so a poll redrawing
 * the list keeps them; `executionId` names sub_workflow children for their links.
 */
export function renderTimeline(records, { openKeys = new Set(), closedGroups = new Set(), executionId } = {}) {
  if (!records.length) return h("p", { class: "muted" }, "No steps yet.");
  const state = { openKeys, closedGroups, executionId };
  return h("ol", { class: "timeline", "aria-label": "Steps" },
    groupRecords(records).map((node) => drawNode(node, 0, state)));
}
