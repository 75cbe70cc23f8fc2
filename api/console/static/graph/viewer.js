// The graph in a scroll box with zoom controls: fit to width, zoom out, zoom in, 100%. The
// zoom is the <svg>'s size over its fixed viewBox, so the box's scroll bars follow it and the
// drawing stays sharp. A graph wider than its box starts fitted; the chosen zoom is kept when
// the graph is drawn again (each edit, each status change), and "fit" follows the box's width.

import { h } from "../dom.js";

const STEP = 1.25;
const MIN = 0.1;
const MAX = 4;

/** createGraphViewer() -> {element, show(svg)}; `svg` from renderGraph(). */
export function createGraphViewer() {
  let svg = null;
  let mode = null; // "fit", a number, or null until the first graph picks one
  const readout = h("output", { class: "zoom-level", "aria-live": "polite" });
  const scroll = h("div", { class: "graph-scroll", tabindex: "-1" });
  const button = (label, name, onclick) =>
    h("button", { type: "button", class: "small", title: name, "aria-label": name, onclick }, label);
  const fitButton = button("Fit", "Fit to width", () => apply("fit"));
  const toolbar = h("div", { class: "graph-tools", role: "toolbar", "aria-label": "Zoom" },
    fitButton,
    button("−", "Zoom out", () => apply(clamp(scale() / STEP))),
    button("+", "Zoom in", () => apply(clamp(scale() * STEP))),
    button("100%", "Actual size (100%)", () => apply(1)),
    readout);
  const element = h("div", { class: "graph-viewer" }, toolbar, scroll);

  const natural = () => ({ w: Number(svg.dataset.width), h: Number(svg.dataset.height) });
  const clamp = (value) => Math.min(MAX, Math.max(MIN, value));

  /** The scale "fit" means now: the whole width in the box, never enlarged past 100%. */
  function fitScale() {
    const room = scroll.clientWidth - 2;
    return room > 0 ? Math.min(1, room / natural().w) : 1;
  }

  function scale() {
    return mode === "fit" ? fitScale() : mode ?? 1;
  }

  function draw() {
    const factor = scale();
    const { w, h: height } = natural();
    svg.setAttribute("width", String(Math.round(w * factor)));
    svg.setAttribute("height", String(Math.round(height * factor)));
    readout.textContent = `${Math.round(factor * 100)}%`;
    fitButton.setAttribute("aria-pressed", String(mode === "fit"));
  }

  function apply(next) {
    if (!svg) return;
    // Zooming keeps the point at the middle of the box where it was.
    const before = Number(svg.getAttribute("width"));
    const middleX = (scroll.scrollLeft + scroll.clientWidth / 2) / before;
    const middleY = (scroll.scrollTop + scroll.clientHeight / 2) / before;
    mode = next;
    draw();
    const after = Number(svg.getAttribute("width"));
    scroll.scrollLeft = middleX * after - scroll.clientWidth / 2;
    scroll.scrollTop = middleY * after - scroll.clientHeight / 2;
  }

  function show(next) {
    if (next !== svg) scroll.replaceChildren(next);
    svg = next;
    // The first graph shown in a box with a width picks the zoom: large graphs start whole.
    if (mode === null && scroll.clientWidth > 0) {
      mode = natural().w > scroll.clientWidth - 2 ? "fit" : 1;
    }
    draw();
  }

  // A box that changes width (a window resized, a hidden tab shown) refits a fitted graph.
  new ResizeObserver(() => {
    if (svg && (mode === "fit" || mode === null)) show(svg);
  }).observe(scroll);

  return { element, show };
}
