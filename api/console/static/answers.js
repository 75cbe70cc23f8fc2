// AI answers as they are written: GET /api/executions/{id}/events (docs/streaming.md), read
// with fetch (EventSource cannot send the API key header) and parsed here. A dropped
// connection resumes from the last event id, so nothing shows twice.

import { getKey } from "./session.js";
import { h, mount } from "./dom.js";

const ROOT = document.querySelector('meta[name="wfe-root"]')?.content || "";
const RETRY_MS = 1000;

/** Split server-sent events out of a text stream: calls `onEvent(name, id, data)`. Lines may
 * end in CRLF (as sse-starlette sends them), CR or LF; a CR at a chunk's end waits for the
 * next chunk, which may begin with its LF. */
function parser(onEvent) {
  let buffer = "";
  return (chunk) => {
    const joined = buffer + chunk;
    const pending = joined.endsWith("\r") ? "\r" : "";
    let text = (pending ? joined.slice(0, -1) : joined).replace(/\r\n?/g, "\n");
    let end;
    while ((end = text.indexOf("\n\n")) >= 0) {
      const block = text.slice(0, end);
      text = text.slice(end + 2);
      let name = "message", id = "", data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("id:")) id = line.slice(3).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trim());
      }
      if (data.length) onEvent(name, id, JSON.parse(data.join("\n")));
    }
    buffer = text + pending;
  };
}

/** Read a run's events until its `end` (or until `signal` aborts), reconnecting as needed. */
export async function followEvents(id, { signal, onEvent }) {
  let lastId = "";
  let ended = false;
  while (!ended && !signal.aborted) {
    const headers = { Accept: "text/event-stream" };
    const token = getKey();
    if (token) headers.Authorization = `Bearer ${token}`;
    if (lastId) headers["Last-Event-ID"] = lastId;
    try {
      const url = `${ROOT}/api/executions/${encodeURIComponent(id)}/events`;
      const response = await fetch(url, { headers, signal, credentials: "omit", cache: "no-store" });
      if (!response.ok || !response.body) return; // not readable with this key: no live answers
      const feed = parser((name, eventId, data) => {
        lastId = eventId || lastId;
        if (name === "end") ended = true;
        onEvent(name, data);
      });
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        feed(value);
      }
    } catch (err) {
      if (err.name === "AbortError") return;
    }
    if (!ended) await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
  }
}

/** A card of the answers being written: one block per model call, text appended as it comes. */
export function answersPanel() {
  const list = h("div", { class: "answers-list" });
  const element = h("section", { class: "card answers", "aria-labelledby": "answers-title", hidden: true },
    h("h2", { id: "answers-title" }, "AI answers, as written"), list);
  const blocks = new Map();

  function delta(data) {
    const key = `${data.seq}/${data.call}`;
    let block = blocks.get(key);
    if (!block) {
      const text = h("pre", { class: "answer-text", "data-path": data.path, "aria-live": "polite" });
      block = { text, item: h("div", { class: "answer" }, h("p", { class: "answer-path mono small" }, data.path), text) };
      blocks.set(key, block);
      list.append(block.item);
      element.hidden = false;
    }
    if (data.restart) block.text.textContent = ""; // a retried attempt starts its answer again
    block.text.textContent += data.text;
  }

  function clear() {
    blocks.clear();
    mount(list);
    element.hidden = true;
  }

  return { element, delta, clear };
}
