// A JSON editor: a plain <textarea> (native undo, selection, IME, screen readers) with a
// line-number gutter and, behind and above the text, a layer that marks lines with problems
// and shows each problem's message at its line.

import { h } from "./dom.js";

const LINE_HEIGHT = 20; // px; must match .editor textarea in console.css
const PADDING_TOP = 8;

/**
 * createEditor({label, value, onInput}) -> {element, textarea, value, setValue,
 * setMarkers([{line, message}]), goTo(line)}
 */
export function createEditor({ label, value = "", onInput, readOnly = false }) {
  const gutter = h("div", { class: "editor-gutter", "aria-hidden": "true" });
  const bands = h("div", { class: "editor-bands", "aria-hidden": "true" });
  const notes = h("div", { class: "editor-notes", "aria-hidden": "true" });
  const textarea = h("textarea", {
    class: "editor-text",
    spellcheck: "false",
    autocapitalize: "off",
    autocomplete: "off",
    wrap: "off",
    "aria-label": label,
    readonly: readOnly,
  });
  textarea.value = value;
  const element = h(
    "div",
    { class: "editor" },
    gutter,
    h("div", { class: "editor-code" }, bands, textarea, notes),
  );
  let markers = [];

  function lineCount() {
    let n = 1;
    const text = textarea.value;
    for (let i = 0; i < text.length; i += 1) if (text.charCodeAt(i) === 10) n += 1;
    return n;
  }

  let drawnLines = 0;
  let drawnMarkers = "";

  // Rebuilt only when the line count or the markers change, not on every keystroke.
  function drawGutter() {
    const n = lineCount();
    const signature = markers.map((m) => `${m.line}:${m.message}`).join("\n");
    if (n === drawnLines && signature === drawnMarkers) return;
    drawnLines = n;
    drawnMarkers = signature;
    const byLine = new Map();
    for (const m of markers) byLine.set(m.line, [...(byLine.get(m.line) || []), m.message]);
    const rows = [];
    for (let line = 1; line <= n; line += 1) {
      const messages = byLine.get(line);
      rows.push(h("div", {
        class: messages ? "gutter-line has-error" : "gutter-line",
        "data-line": line,
        title: messages ? messages.join("\n") : null,
      }, String(line)));
    }
    gutter.replaceChildren(...rows);
    gutter.scrollTop = textarea.scrollTop;
  }

  function top(line) {
    return PADDING_TOP + (line - 1) * LINE_HEIGHT - textarea.scrollTop;
  }

  function drawMarkers() {
    const grouped = new Map();
    for (const m of markers) {
      if (!grouped.has(m.line)) grouped.set(m.line, []);
      grouped.get(m.line).push(m.message);
    }
    bands.replaceChildren();
    notes.replaceChildren();
    for (const [line, messages] of grouped) {
      bands.append(h("div", { class: "editor-band", style: { top: `${top(line)}px` } }));
      notes.append(h("div", {
        class: "editor-note",
        "data-line": line,
        title: messages.join("\n"),
        style: { top: `${top(line)}px` },
      }, messages.join(" · "))); // every problem of the line, not the first alone
    }
  }

  function syncScroll() {
    gutter.scrollTop = textarea.scrollTop;
    drawMarkers(); // a handful of absolutely placed elements: cheap to place again
  }

  // Enter keeps the current line's indentation, as any code editor does. Tab is left alone
  // so keyboard users can still leave the field.
  textarea.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || event.shiftKey || event.altKey || event.ctrlKey || event.metaKey) {
      return;
    }
    const { selectionStart, value: text } = textarea;
    const lineStart = text.lastIndexOf("\n", selectionStart - 1) + 1;
    const indent = /^[ \t]*/.exec(text.slice(lineStart))[0];
    const opener = /[[{]\s*$/.test(text.slice(lineStart, selectionStart)) ? "  " : "";
    if (!indent && !opener) return;
    event.preventDefault();
    // execCommand keeps the textarea's own undo history; setRangeText is the fallback.
    if (!document.execCommand("insertText", false, `\n${indent}${opener}`)) {
      textarea.setRangeText(`\n${indent}${opener}`, selectionStart, textarea.selectionEnd, "end");
      textarea.dispatchEvent(new Event("input"));
    }
  });
  textarea.addEventListener("input", () => {
    drawGutter();
    onInput?.(textarea.value);
  });
  textarea.addEventListener("scroll", syncScroll);

  drawGutter();

  return {
    element,
    textarea,
    get value() {
      return textarea.value;
    },
    setValue(text) {
      textarea.value = text;
      drawGutter();
      drawMarkers();
    },
    setReadOnly(flag) {
      textarea.readOnly = flag;
    },
    /** markers: [{line, message}]; [] clears them. */
    setMarkers(list) {
      markers = list;
      drawGutter();
      drawMarkers();
    },
    /** Put the caret at the start of a line and scroll it into view. */
    goTo(line) {
      const lines = textarea.value.split("\n");
      let offset = 0;
      for (let i = 0; i < line - 1 && i < lines.length; i += 1) offset += lines[i].length + 1;
      textarea.focus();
      textarea.setSelectionRange(offset, offset + (lines[line - 1] || "").length);
      const wanted = (line - 1) * LINE_HEIGHT;
      if (wanted < textarea.scrollTop || wanted > textarea.scrollTop + textarea.clientHeight - 40) {
        textarea.scrollTop = Math.max(0, wanted - textarea.clientHeight / 3);
      }
      syncScroll();
    },
  };
}
