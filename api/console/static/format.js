// How times, durations, money and ids read in the console. Pure functions.

/** "850 ms", "12.3 s", "4 min 05 s", "2 h 07 min", "3 d 4 h". */
export function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "—";
  if (ms < 0) ms = 0;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(2) : s.toFixed(1)} s`;
  const pad = (n) => String(n).padStart(2, "0");
  const total = Math.floor(s);
  if (total < 3600) return `${Math.floor(total / 60)} min ${pad(total % 60)} s`;
  if (total < 86400) return `${Math.floor(total / 3600)} h ${pad(Math.floor(total / 60) % 60)} min`;
  return `${Math.floor(total / 86400)} d ${Math.floor(total / 3600) % 24} h`;
}

/** Milliseconds between two ISO times; a missing end means "until now" (still running). */
export function elapsed(start, end) {
  if (!start) return null;
  const from = Date.parse(start);
  const to = end ? Date.parse(end) : Date.now();
  return Number.isNaN(from) || Number.isNaN(to) ? null : to - from;
}

/** Local date and time, to the second: "2025-03-01 14:02:09". */
export function dateTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} `
    + `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** "just now", "5 min ago", "3 h ago", else the date. */
export function ago(iso) {
  const ms = elapsed(iso, null);
  if (ms === null) return "—";
  if (ms < 45_000) return "just now";
  if (ms < 3_600_000) return `${Math.round(ms / 60_000)} min ago`;
  if (ms < 86_400_000) return `${Math.round(ms / 3_600_000)} h ago`;
  return dateTime(iso).slice(0, 10);
}

/** US dollars with enough digits that a cheap call does not read as $0.00. */
export function cost(usd) {
  if (usd === null || usd === undefined || typeof usd !== "number") return null;
  if (usd === 0) return "$0";
  if (usd < 0.01) return `$${usd.toPrecision(2)}`;
  return `$${usd.toFixed(usd < 1 ? 4 : 2)}`;
}

export function count(n) {
  return typeof n === "number" ? n.toLocaleString("en-US") : "—";
}

const UUID = /([0-9a-f]{8})-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi;
const LONG_HEX = /\b([0-9a-f]{8})[0-9a-f]{24}\b/gi;

/**
 * An execution id short enough for a title or a list: the first block of each UUID (and of
 * an idempotency digest) tells runs apart, and the rest stays readable, such as the
 * definition id that starts it (`support-triage-3f2a9c1e`, `…-idem-9b1c04de`, a child's
 * `…-3f2a9c1e-review-7`).
 */
export function shortId(id) {
  return String(id || "").replace(UUID, "$1").replace(LONG_HEX, "$1");
}

/** Cut text to `max` characters with an ellipsis (the full text goes in a title). */
export function truncate(text, max) {
  const str = String(text ?? "");
  return str.length > max ? `${str.slice(0, Math.max(1, max - 1))}…` : str;
}

/** Pretty JSON for display. */
export function pretty(value) {
  return JSON.stringify(value, null, 2);
}

/** The run's cost, wherever the answer carries it (`usage.cost_usd`). */
export function costOf(answer) {
  const value = answer?.usage?.cost_usd ?? answer?.cost_usd;
  return typeof value === "number" ? value : null;
}

/** "512 B", "4.0 KB", "2.1 MB": a size in bytes. */
export function bytes(n) {
  if (typeof n !== "number") return "—";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MB`;
}

/** A value the status answer summarised because it is large: `{"$summary": {...}}`. */
export function isSummary(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value)
    && Object.keys(value).length === 1 && value.$summary !== null
    && typeof value.$summary === "object";
}

/** One line for a summary: its type, size, and keys, length or first characters. */
export function summaryLine(about) {
  const parts = [String(about.type ?? "value"), bytes(about.bytes)];
  const keys = Array.isArray(about.keys) ? about.keys.map(String) : [];
  if (about.type === "object") {
    const more = typeof about.length === "number" && about.length > keys.length ? ", …" : "";
    parts.push(`${count(about.length)} keys${keys.length ? `: ${keys.join(", ")}${more}` : ""}`);
  } else if (about.type === "array") {
    parts.push(`${count(about.length)} items`);
  } else if (about.type === "string") {
    parts.push(`${count(about.length)} characters: ${JSON.stringify(String(about.preview ?? ""))}…`);
  }
  return `‹summarised: ${parts.join(", ")}›`;
}

/** Pretty JSON for display, each summary of a large value as its one readable line. */
export function prettyValues(value) {
  return JSON.stringify(value, (_, v) => (isSummary(v) ? summaryLine(v.$summary) : v), 2);
}
