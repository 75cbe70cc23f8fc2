// A hash router: `#/workflows/hello/edit?version=2`. The hash never reaches the server, and
// back/forward, bookmarks and new tabs work. A view that stays on screen when only part of
// the route changes (a tab, a filter) gets `update()` instead of being rebuilt, so unsaved
// editor text survives switching tabs.

let active = null;

/** Build the current view again from scratch (after a save: new data, same route). */
export function reload() {
  active?.refresh();
}

/** Parse the current hash into `{path, query}`. */
export function currentRoute() {
  const raw = window.location.hash.replace(/^#/, "") || "/";
  const [path, search = ""] = raw.split("?");
  return { path: path || "/", query: new URLSearchParams(search) };
}

/** Build a hash link: link("/executions", {status: "running"}). Empty values are dropped. */
export function link(path, query = {}) {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v !== undefined && v !== null && v !== "") params.set(k, v);
  }
  const search = params.toString();
  return `#${path}${search ? `?${search}` : ""}`;
}

export function navigate(path, query) {
  window.location.hash = link(path, query).slice(1);
}

/** Replace the current history entry (filters: no back-button entry per keystroke). */
export function replace(path, query) {
  history.replaceState(null, "", link(path, query));
  window.dispatchEvent(new HashChangeEvent("hashchange"));
}

function compile(pattern) {
  const names = [];
  const source = pattern
    .split("/")
    .map((part) => {
      if (part.startsWith(":")) {
        const optional = part.endsWith("?");
        names.push(part.slice(1).replace("?", ""));
        return optional ? "(?:/([^/]+))?" : "/([^/]+)";
      }
      return part ? `/${part}` : "";
    })
    .join("");
  return { regex: new RegExp(`^${source || "/"}$`), names };
}

/** The lifecycle a view gets: aborts its requests and stops its timers when it leaves. */
function lifecycle() {
  const controller = new AbortController();
  const cleanups = [];
  return {
    signal: controller.signal,
    get alive() {
      return !controller.signal.aborted;
    },
    onCleanup(fn) {
      cleanups.push(fn);
    },
    end() {
      controller.abort();
      for (const fn of cleanups.splice(0)) fn();
    },
  };
}

/**
 * routes: [{pattern: "/workflows/:id/:tab?", key(params) => string, view(root, params, life)}]
 * A view returns an optional object with update(params).
 */
export function startRouter(root, routes, { notFound, before } = {}) {
  const compiled = routes.map((r) => ({ ...r, ...compile(r.pattern) }));
  let current = null;

  function resolve() {
    const { path, query } = currentRoute();
    for (const route of compiled) {
      const match = route.regex.exec(path);
      if (!match) continue;
      const params = { query };
      route.names.forEach((name, i) => {
        params[name] = match[i + 1] === undefined ? undefined : decodeURIComponent(match[i + 1]);
      });
      return { route, params };
    }
    return null;
  }

  function render() {
    if (before && before() === false) return;
    const found = resolve();
    if (!found) {
      if (current) current.life.end();
      current = null;
      notFound?.(root);
      return;
    }
    const { route, params } = found;
    const key = `${route.pattern}|${route.key ? route.key(params) : ""}`;
    if (current && current.key === key && current.handle?.update) {
      current.handle.update(params);
      return;
    }
    if (current) current.life.end();
    const life = lifecycle();
    root.replaceChildren();
    const handle = route.view(root, params, life);
    current = { key, life, handle };
    // Land keyboard and screen-reader users on the new page's heading once it is drawn.
    requestAnimationFrame(() => root.querySelector("h1")?.focus({ preventScroll: true }));
  }

  window.addEventListener("hashchange", render);
  render();
  active = {
    /** End the current view (its polls and requests) and draw nothing: signing out. */
    halt() {
      if (current) current.life.end();
      current = null;
    },
    refresh() {
      if (current) current.life.end();
      current = null;
      render();
    },
  };
  return active;
}
