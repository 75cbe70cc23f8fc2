// Text on the graph is wrapped, never cut: a condition such as `if classification.priority ==
// 'high' && ...` is read whole on its node, over as many lines as it takes. Widths come from
// the fonts the page really draws with (a canvas measures them), so lines fit their node.

/** The graph's text styles (console.css `.graph ...`), as canvas fonts. */
const STYLES = {
  id: { weight: 650, size: 12, family: "--sans" },
  sub: { weight: 400, size: 12, family: "--sans" },
  row: { weight: 400, size: 11, family: "--mono" },
  type: { weight: 400, size: 10.5, family: "--sans", caps: true },
  label: { weight: 650, size: 11, family: "--sans", caps: true },
};
const LETTER_SPACING = 0.05; // em, of the upper-case labels

/** A width estimate, for when no canvas is at hand: generous, so text still fits. */
function estimate(text, style) {
  return text.length * style.size * (style.family === "--mono" ? 0.61 : 0.62);
}

/**
 * createMeasure() -> measure(text, kind) in px. With a canvas, the page's own fonts; without
 * one (or before the stylesheet applies), an estimate.
 */
export function createMeasure() {
  const canvas = typeof document !== "undefined" ? document.createElement("canvas") : null;
  const ctx = canvas?.getContext?.("2d");
  const css = ctx ? getComputedStyle(document.documentElement) : null;
  const fonts = {};
  return (text, kind) => {
    const style = STYLES[kind] || STYLES.sub;
    const shown = style.caps ? text.toUpperCase() : text;
    const spacing = style.caps ? shown.length * style.size * LETTER_SPACING : 0;
    const family = css?.getPropertyValue(style.family).trim();
    if (!ctx || !family) return estimate(shown, style) + spacing;
    fonts[kind] ||= `${style.weight} ${style.size}px ${family}`;
    ctx.font = fonts[kind];
    return ctx.measureText(shown).width + spacing;
  };
}

/** Splits a word wider than a line into pieces that fit (a long URL, an id without spaces). */
function breakWord(word, fits) {
  const pieces = [];
  let piece = "";
  for (const ch of word) {
    if (piece && !fits(piece + ch)) {
      pieces.push(piece);
      piece = "";
    }
    piece += ch;
  }
  return piece ? [...pieces, piece] : pieces;
}

// A line may break after spaces, and after the - / ? & , that join ids, URLs and lists.
const WORDS = /[^\s\-/?&,]+[\-/?&,]*\s*|[\-/?&,]+\s*|\s+/g;

/**
 * wrapText(text, width, measure, kind) -> lines, each at most `width` px wide (but at least
 * one character), broken after spaces (or - / ? & ,) where
 * it can. Joined, the lines are the text again.
 */
export function wrapText(text, width, measure, kind) {
  const str = String(text ?? "");
  if (!str) return [""];
  const fits = (s) => measure(s.trimEnd(), kind) <= width;
  const lines = [];
  let line = "";
  for (const word of str.match(WORDS)) {
    if (fits(line + word)) {
      line += word;
      continue;
    }
    if (line) lines.push(line);
    line = "";
    const pieces = fits(word) ? [word] : breakWord(word, fits);
    line = pieces.pop();
    lines.push(...pieces);
  }
  lines.push(line);
  return lines;
}
