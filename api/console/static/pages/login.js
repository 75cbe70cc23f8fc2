// Sign-in: the API key, checked against the API once, then kept in sessionStorage.

import { api } from "../api.js";
import { h, mount, uid } from "../dom.js";
import { setKey } from "../session.js";
import { errorBox, errorsFrom, pageTitle } from "../ui.js";

export function showLogin(root, { notice, onSignedIn }) {
  const id = uid("key");
  const input = h("input", {
    id, type: "password", name: "api-key", autocomplete: "off", required: true,
    spellcheck: "false", "aria-describedby": `${id}-hint`,
  });
  const errors = h("div");
  const button = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h("form", {
    class: "card login",
    onsubmit: async (event) => {
      event.preventDefault();
      const key = input.value.trim();
      if (!key) {
        mount(errors, errorBox([{ code: "missing_key", message: "Enter an API key." }], { title: "No key" }));
        return;
      }
      button.disabled = true;
      button.textContent = "Checking…";
      try {
        await api.checkKey(key);
        setKey(key);
        onSignedIn();
      } catch (err) {
        mount(errors, errorBox(errorsFrom(err), { title: "This key does not open the API" }));
        input.focus();
        input.select();
      } finally {
        button.disabled = false;
        button.textContent = "Sign in";
      }
    },
  },
  pageTitle("Sign in"),
  notice ? h("p", { class: "notice", role: "alert" }, notice) : null,
  h("div", { class: "field" },
    h("label", { for: id }, "API key"),
    input,
    h("p", { class: "hint", id: `${id}-hint` },
      "The key `make dev` printed (or one from API_KEYS). It stays in this browser tab only ",
      "(sessionStorage) and is sent as an Authorization header, never in a URL.")),
  errors,
  h("div", { class: "actions" }, button));
  mount(root, form);
  input.focus();
}
