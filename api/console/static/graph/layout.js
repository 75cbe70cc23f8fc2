// Where everything goes: each list of steps is a column (steps top to bottom, in document
// order, ending in an "end" pill); `parallel` and `foreach` are boxes holding their own
// columns side by side. Arrows to the following step go straight down; every other arrow
// (jumps, branches, error routes, loops back) leaves the node's right side into a vertical
// lane right of the column and comes back into its target's right side. Lanes are given out
// shortest arrow first, so short hops hug the column and arrows never share a lane segment.
// Pure: numbers in, numbers out.

export const G = {
  nodeW: 256,
  headerH: 46,
  rowH: 20,
  rowsPad: 6,
  vgap: 30,
  laneStart: 18,
  laneGap: 12,
  boxPad: 14,
  branchGap: 22,
  labelH: 24,
  pillW: 64,
  pillH: 24,
};

function headHeight(item) {
  return G.headerH + (item.rows.length ? item.rows.length * G.rowH + G.rowsPad : 0);
}

/** The y (from the node's top) where a row's arrow leaves, or the header's middle. */
export function exitY(from) {
  return from === "main" ? G.headerH / 2 : G.headerH + from * G.rowH + G.rowH / 2;
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
 * boxes: [{item, x, y, w, h, head, inner: [{label, x, y, layout}]}] in scope coordinates.
 * edges: [{kind, points: [[x, y], ...]}]
 */
export function layoutScope(scope, { start = false } = {}) {
  const boxes = scope.items.map((item) => {
    const head = headHeight(item);
    if (!item.scopes.length) return { item, w: G.nodeW, h: head, head, inner: [] };
    const inner = item.scopes.map((s) => ({ label: s.label, layout: layoutScope(s.scope) }));
    const innerW = inner.reduce((sum, c) => sum + c.layout.width, 0)
      + G.branchGap * (inner.length - 1);
    const innerH = Math.max(...inner.map((c) => c.layout.height)) + G.labelH;
    const w = Math.max(G.nodeW, innerW + 2 * G.boxPad);
    let x = (w - innerW) / 2;
    for (const column of inner) {
      column.x = x;
      column.y = head + G.boxPad + G.labelH;
      x += column.layout.width + G.branchGap;
    }
    return { item, w, h: head + 2 * G.boxPad + innerH, head, inner };
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
      const entryY = isEnd ? end.y + G.pillH / 2 : targetBox.y + Math.min(G.headerH / 2, targetBox.h / 2);
      laned.push({
        kind: exit.kind,
        x1: box.x + box.w,
        y1: box.y + exitY(exit.from),
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
