// Entry point: ask for a key if this tab has none, then hand the page to the router.

import { UNAUTHORIZED_EVENT } from "./api.js";
import { h, mount } from "./dom.js";
import { executionView } from "./pages/execution.js";
import { executionsView } from "./pages/executions.js";
import { showLogin } from "./pages/login.js";
import { newDefinitionView } from "./pages/newdef.js";
import { workflowView } from "./pages/workflow.js";
import { workflowsView } from "./pages/workflows.js";
import { currentRoute, link, startRouter } from "./router.js";
import { forgetKey, getKey } from "./session.js";
import { pageTitle } from "./ui.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const session = document.getElementById("session");

const ROUTES = [
  { pattern: "/workflows", view: workflowsView },
  { pattern: "/new", view: newDefinitionView },
  // Same definition and version: a tab change updates the view instead of rebuilding it.
  { pattern: "/workflows/:id/:tab?", key: (p) => `${p.id}|${p.query.get("version") || ""}`, view: workflowView },
  { pattern: "/executions", view: executionsView },
  { pattern: "/executions/:id", key: (p) => p.id, view: executionView },
];

let router = null;
let loginShown = false;

function markSection() {
  const section = currentRoute().path.startsWith("/executions") ? "executions" : "workflows";
  for (const a of nav.querySelectorAll("a")) {
    if (a.dataset.section === section) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

function signOut(notice) {
  forgetKey();
  router?.halt(); // no view keeps polling without a key
  // Several requests in flight may all answer 401: ask once, not once per answer.
  if (loginShown) return;
  loginShown = true;
  nav.hidden = true;
  mount(session);
  showLogin(main, { notice, onSignedIn: start });
}

function start() {
  loginShown = false;
  nav.hidden = false;
  mount(session,
    h("span", { class: "muted small" }, "Key set for this tab"),
    h("button", { type: "button", class: "small", onclick: () => signOut("Signed out: the key is forgotten.") }, "Forget key"));
  if (!currentRoute().path || currentRoute().path === "/") {
    history.replaceState(null, "", link("/workflows"));
  }
  if (router) {
    router.refresh();
    return;
  }
  router = startRouter(main, ROUTES, {
    before: () => {
      markSection();
      if (!getKey()) {
        signOut();
        return false;
      }
      if (currentRoute().path === "/") {
        history.replaceState(null, "", link("/workflows"));
      }
      return true;
    },
    notFound: (root) => mount(root, pageTitle("Not found"),
      h("p", {}, "No such page. ", h("a", { href: link("/workflows") }, "Go to the definitions."))),
  });
}

window.addEventListener(UNAUTHORIZED_EVENT, () => {
  signOut("The API refused the key (401): enter a valid key.");
});

document.getElementById("booting")?.remove();
if (getKey()) start();
else signOut();
