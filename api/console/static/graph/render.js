// Draws a layout (layout.js) as SVG: nodes, boxes for nested scopes, arrows by kind. Status
// colours come from `statusOf(key)`, so the execution page can show what ran.

import { s } from "../dom.js";
import { G, layoutScope } from "./layout.js";
import { scopeOf } from "./model.js";

const EDGE_KINDS = ["next", "jump", "branch", "default", "error"];
let instances = 0;

/** A <text> of wrapped lines (layout.js wrapped them), the first baseline at `y`. */
function lines(attrs, list, y, lineH) {
  return s("text", { ...attrs, y }, list.map((line, i) =>
    s("tspan", { x: attrs.x, dy: i ? lineH : null }, line)));
}

/** A polyline with rounded corners, as an SVG path. */
function roundedPath(points, radius = 6) {
  let d = `M${points[0][0]},${points[0][1]}`;
  for (let i = 1; i < points.length; i += 1) {
    const [x, y] = points[i];
    const next = points[i + 1];
    if (!next) {
      d += ` L${x},${y}`;
      break;
    }
    const [px, py] = points[i - 1];
    const inLen = Math.hypot(x - px, y - py);
    const outLen = Math.hypot(next[0] - x, next[1] - y);
    const r = Math.min(radius, inLen / 2, outLen / 2);
    const ax = x - ((x - px) / (inLen || 1)) * r;
    const ay = y - ((y - py) / (inLen || 1)) * r;
    const bx = x + ((next[0] - x) / (outLen || 1)) * r;
    const by = y + ((next[1] - y) / (outLen || 1)) * r;
    d += ` L${ax},${ay} Q${x},${y} ${bx},${by}`;
  }
  return d;
}

function markers(prefix) {
  return s("defs", {}, EDGE_KINDS.map((kind) =>
    s("marker", {
      id: `${prefix}-${kind}`,
      viewBox: "0 0 10 10",
      refX: "9",
      refY: "5",
      markerWidth: "7",
      markerHeight: "7",
      orient: "auto-start-reverse",
      class: `marker marker-${kind}`,
    }, s("path", { d: "M0,0 L10,5 L0,10 z" }))));
}

function drawEdge(edge, prefix) {
  return s("path", {
    class: `edge edge-${edge.kind}`,
    d: roundedPath(edge.points),
    "marker-end": `url(#${prefix}-${edge.kind})`,
  });
}

function describe(item) {
  return [
    `${item.id} (${item.type})`,
    item.name,
    item.detail,
    item.output ? `output: ${item.output}` : "",
    ...item.rows.filter((r) => r.kind !== "info").map((r) => r.text),
  ].filter(Boolean).join("\n");
}

function drawHeader(box, status) {
  const { item, w, text } = box;
  const parts = [
    s("rect", { class: "node-stripe", x: 0, y: 0, width: 5, height: box.head, rx: 2 }),
    lines({ class: "node-id", x: 14 }, text.id, G.headTop + 12, G.lineH),
    s("text", { class: "node-type", x: w - 10, y: G.headTop + 11, "text-anchor": "end" }, text.typeLabel),
    lines({ class: "node-sub", x: 14 }, text.sub, text.subTop + 12, G.lineH),
  ];
  if (status) {
    parts.push(s("circle", { class: `node-status st-${status}`, cx: w - 12, cy: text.subTop + 8, r: 4 }));
  }
  item.rows.forEach((row, r) => {
    const placed = text.rows[r];
    parts.push(lines({ class: `node-row row-${row.kind}${row.unknown ? " row-unknown" : ""}`, x: 14 },
      placed.lines, placed.top + 14, G.rowLineH));
    if (row.target !== undefined && !row.unknown) {
      parts.push(s("circle", { class: `port port-${row.kind}`, cx: w, cy: placed.exitY, r: 3.5 }));
    }
  });
  if (item.rows.length) {
    parts.push(s("line", { class: "node-divider", x1: 10, x2: w - 10, y1: text.headerH, y2: text.headerH }));
  }
  return parts;
}

function drawBox(box, ctx) {
  const { item } = box;
  const status = ctx.statusOf?.(item.key) || null;
  const container = box.inner.length > 0;
  const classes = [
    container ? "gbox" : "gnode",
    `type-${item.type.replace(/[^a-z0-9_]/gi, "")}`,
    status ? `st-${status}` : "",
    ctx.onSelect ? "selectable" : "",
  ].filter(Boolean).join(" ");
  const group = s("g", {
    class: classes,
    transform: `translate(${box.x},${box.y})`,
    "data-step": item.key,
    "data-path": item.jsonPath,
  });
  group.append(s("title", {}, describe(item) + (status ? `\nstatus: ${status}` : "")));
  group.append(s("rect", { class: container ? "box-bg" : "node-bg", width: box.w, height: box.h, rx: 10 }));
  if (container) {
    group.append(s("rect", { class: "box-head", width: box.w, height: box.head, rx: 10 }));
  }
  group.append(...drawHeader(box, status));
  for (const column of box.inner) {
    group.append(
      lines({ class: "scope-label", x: column.x + 4 }, column.label,
        column.y - box.labelH + 16, G.labelLineH),
      s("rect", {
        class: "scope-bg",
        x: column.x - 6,
        y: column.y - box.labelH + 2,
        width: column.layout.width + 12,
        height: column.layout.height + box.labelH + 4,
        rx: 8,
      }),
      drawScope(column.layout, ctx, column.x, column.y),
    );
  }
  if (ctx.onSelect) {
    // The header area (not the nested steps) selects this step: click, Enter or Space.
    const hit = s("rect", {
      class: "hit",
      width: box.w,
      height: box.head,
      rx: 10,
      tabindex: "0",
      role: "button",
      "aria-label": `Step ${item.id} (${item.type}): show in the JSON editor`,
    });
    const choose = () => ctx.onSelect(item);
    hit.addEventListener("click", choose);
    hit.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        choose();
      }
    });
    group.append(hit);
  }
  if (item.href) {
    // The child workflow's own graph is one click away.
    group.append(s("a", { href: item.href, class: "child-link", "aria-label": `Open workflow ${item.linkTo}` },
      s("text", { class: "node-link", x: box.w - 22, y: box.text.subTop + 12, "text-anchor": "end" }, "open ↗")));
  }
  return group;
}

function drawScope(layout, ctx, x = 0, y = 0) {
  const group = s("g", { class: "scope", transform: `translate(${x},${y})` });
  for (const edge of layout.edges) group.append(drawEdge(edge, ctx.prefix));
  if (layout.start) {
    const p = layout.start;
    group.append(s("g", { class: "pill pill-start", transform: `translate(${p.x},${p.y})` },
      s("rect", { width: p.w, height: p.h, rx: p.h / 2 }),
      s("text", { x: p.w / 2, y: p.h / 2 + 4, "text-anchor": "middle" }, "start")));
  }
  for (const box of layout.boxes) group.append(drawBox(box, ctx));
  const e = layout.end;
  group.append(s("g", { class: "pill pill-end", transform: `translate(${e.x},${e.y})` },
    s("rect", { width: e.w, height: e.h, rx: e.h / 2 }),
    s("text", { x: e.w / 2, y: e.h / 2 + 4, "text-anchor": "middle" }, "end")));
  return group;
}

/**
 * renderGraph(steps, {kinds, statusOf(key) -> status|null, onSelect(item)}) -> <svg>
 * kinds: from kindsFromSchema() (schema.js loads it); without, every step is a plain node.
 */
export function renderGraph(steps, { kinds, statusOf, onSelect } = {}) {
  instances += 1;
  const prefix = `wfe-graph-${instances}`;
  const scope = scopeOf(steps, { kinds });
  const layout = layoutScope(scope, { start: true });
  const margin = 16;
  const width = Math.ceil(layout.width + 2 * margin);
  const height = Math.ceil(layout.height + 2 * margin);
  const count = (sc) => sc.items.reduce((n, it) => n + 1 + it.scopes.reduce((m, c) => m + count(c.scope), 0), 0);
  const svg = s("svg", {
    class: "graph",
    xmlns: "http://www.w3.org/2000/svg",
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    "data-width": width, // its size at 100%, for the zoom (viewer.js)
    "data-height": height,
    role: "group",
    "aria-label": `Graph of ${count(scope)} steps`,
  });
  svg.append(markers(prefix), drawScope(layout, { prefix, statusOf, onSelect }, margin, margin));
  return svg;
}
