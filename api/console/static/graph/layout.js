// Where everything goes: each list of steps is a column (steps top to bottom, in document
// order, ending in an "end" pill); `parallel` and `foreach` are boxes holding their own
// columns side by side. Arrows to the following step go straight down; every other arrow
// (jumps, branches, error routes, loops back) leaves the node's right side into a vertical
// lane right of the column and comes back into its target's right side. Lanes are given out
// shortest arrow first, so short hops hug the column and arrows never share a lane segment.
// Pure but for text widths, which come from `measure` (text.js).

import { createMeasure, wrapText } from "./text.js";

export const G = {
  nodeW: 256,
  lineH: 15, // a line of the header's 12px text
  headTop: 7,
  headGap: 3, // between the id and the line under it
  headBottom: 6,
  rowLineH: 14, // a line of a row's 11px text
  rowPad: 6,
  rowsPad: 6,
  vgap: 30,
  laneStart: 18,
  laneGap: 12,
  boxPad: 14,
  branchGap: 22,
  labelLineH: 14,
  labelPad: 10,
  pillW: 64,
  pillH: 24,
};

/** The id and its type, the sub line, the rows: each wrapped to its place on a node `w` wide. */
function headText(item, w, measure) {
  const typeLabel = item.type.replace(/_/g, " ");
  const typeW = measure(typeLabel, "type") + 12;
  const id = wrapText(item.id, Math.max(40, w - 28 - typeW), measure, "id");
  const subText = item.name || item.detail || (item.output ? `→ ${item.output}` : "");
  // Room on the right for the status dot, and for a child workflow's "open ↗" link.
  const sub = wrapText(subText, w - 38 - (item.href ? 46 : 0), measure, "sub");
  const subTop = G.headTop + id.length * G.lineH + G.headGap;
  const headerH = subTop + sub.length * G.lineH + G.headBottom;
  let top = headerH;
  const rows = item.rows.map((row) => {
    const label = row.unknown
      ? `⚠ ${row.text}${row.target !== undefined ? ` → ${row.target} (no such step)` : ""}` : row.text;
    const lines = wrapText(label, w - 30, measure, "row");
    const placed = { lines, top, exitY: top + 10 };
    top += lines.length * G.rowLineH + G.rowPad;
    return placed;
  });
  return { typeLabel, id, sub, subTop, headerH, rows, head: top + (rows.length ? G.rowsPad : 0) };
}

/** The y (from the node's top) where an arrow leaves or enters: its row, or the header's
 * middle. */
export function exitY(box, from) {
  return from === "main" ? box.text.headerH / 2 : box.text.rows[from].exitY;
}

function assignLanes(edges) {
  const lanes = [];
  const order = [...edges].sort(
    (a, b) => Math.abs(a.y2 - a.y1) - Math.abs(b.y2 - b.y1) || a.y1 - b.y1,
  );
  for (const edge of order) {
    const lo = Math.min(edge.y1, edge.y2) - 4;
    const hi = Math.max(edge.y1, edge.y2) + 4;
    let lane = lanes.findIndex((taken) => taken.every(([a, b]) => hi < a || lo > b));
    if (lane === -1) {
      lanes.push([]);
      lane = lanes.length - 1;
    }
    lanes[lane].push([lo, hi]);
    edge.lane = lane;
  }
  return lanes.length;
}

/**
 * layoutScope(scope, {start}) -> {width, height, boxes, end, edges, start?}
 * boxes: [{item, x, y, w, h, head, text, labelH, inner: [{label, x, y, layout}]}] in scope
 * coordinates; `text` is headText()'s lines and their places, `label` a column's lines.
 * edges: [{kind, points: [[x, y], ...]}]
 */
export function layoutScope(scope, { start = false, measure = createMeasure() } = {}) {
  const boxes = scope.items.map((item) => {
    if (!item.scopes.length) {
      const text = headText(item, G.nodeW, measure);
      return { item, w: G.nodeW, h: text.head, head: text.head, text, inner: [] };
    }
    const inner = item.scopes.map((s) => {
      const layout = layoutScope(s.scope, { measure });
      const label = wrapText(s.label, Math.max(layout.width - 4, 60), measure, "label");
      return { label, layout };
    });
    const innerW = inner.reduce((sum, c) => sum + c.layout.width, 0)
      + G.branchGap * (inner.length - 1);
    const labelH = Math.max(...inner.map((c) => c.label.length)) * G.labelLineH + G.labelPad;
    const innerH = Math.max(...inner.map((c) => c.layout.height)) + labelH;
    const w = Math.max(G.nodeW, innerW + 2 * G.boxPad);
    const text = headText(item, w, measure);
    let x = (w - innerW) / 2;
    for (const column of inner) {
      column.x = x;
      column.y = text.head + G.boxPad + labelH;
      x += column.layout.width + G.branchGap;
    }
    return { item, w, h: text.head + 2 * G.boxPad + innerH, head: text.head, text, labelH, inner };
  });

  const contentW = Math.max(G.pillW, ...boxes.map((b) => b.w));
  const axis = contentW / 2;
  let y = 0;
  let startPill = null;
  if (start) {
    startPill = { x: axis - G.pillW / 2, y: 0, w: G.pillW, h: G.pillH };
    y = G.pillH + G.vgap;
  }
  for (const box of boxes) {
    box.x = axis - box.w / 2;
    box.y = y;
    y += box.h + G.vgap;
  }
  const end = { x: axis - G.pillW / 2, y, w: G.pillW, h: G.pillH };
  const height = y + G.pillH;

  const byId = new Map(boxes.map((b, i) => [b.item.id, { box: b, index: i }]));
  const straight = [];
  const laned = [];
  if (startPill) {
    const first = boxes[0] || end;
    straight.push({ kind: "next", points: [[axis, G.pillH], [axis, first.y]] });
  }
  boxes.forEach((box, index) => {
    for (const exit of box.item.exits) {
      const isEnd = exit.target === "end";
      const found = isEnd ? null : byId.get(exit.target);
      if (!isEnd && !found) continue;
      const targetBox = isEnd ? end : found.box;
      const adjacent = isEnd ? index === boxes.length - 1 : found.index === index + 1;
      if (exit.from === "main" && adjacent) {
        straight.push({ kind: exit.kind, points: [[axis, box.y + box.h], [axis, targetBox.y]] });
        continue;
      }
      const entryY = isEnd ? end.y + G.pillH / 2 : targetBox.y + exitY(targetBox, "main");
      laned.push({
        kind: exit.kind,
        x1: box.x + box.w,
        y1: box.y + exitY(box, exit.from),
        x2: targetBox.x + targetBox.w,
        y2: entryY,
        from: `${box.item.id}:${exit.from}`,
      });
    }
  });
  const laneCount = assignLanes(laned);
  const laneX = (lane) => contentW + G.laneStart + lane * G.laneGap;
  const edges = [
    ...straight,
    ...laned.map((e) => ({
      kind: e.kind,
      points: [[e.x1, e.y1], [laneX(e.lane), e.y1], [laneX(e.lane), e.y2], [e.x2, e.y2]],
    })),
  ];
  const width = contentW + (laneCount ? G.laneStart + (laneCount - 1) * G.laneGap + 8 : 0);
  return { width, height, boxes, end, start: startPill, edges, axis };
}
