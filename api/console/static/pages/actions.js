// What can be done with an execution: approve / send the signal it waits for, send any
// signal, cancel it while it runs, rerun it from a chosen step once it has finished.
// Each form keeps what the user typed across the page's live refreshes: it is built once
// and only shown, hidden or refilled when the execution's state changes.

import { api } from "../api.js";
import { h, mount, uid } from "../dom.js";
import { dateTime } from "../format.js";
import { navigate } from "../router.js";
import { errorBox, errorsFrom, toast, warningBox } from "../ui.js";

const DEFAULT_PAYLOADS = {
  // SPEC §11: a paused budget continues with new limits, or stops with {"approve": false}.
  budget: { max_cost_usd: 1 },
};

function parsePayload(text) {
  if (!text.trim()) return { payload: undefined };
  try {
    return { payload: JSON.parse(text) };
  } catch (err) {
    return { error: { code: "invalid_json", message: `The payload is not JSON: ${err.message}`, path: "$" } };
  }
}

function busy(button, flag, label) {
  button.disabled = flag;
  if (label) button.textContent = label;
}

export function actionsPanel({ id, afterChange }) {
  // -- approval: the signal a wait_for_signal step waits for now ------------------------------
  const approvalId = uid("approval");
  const approvalTitle = h("h2", { id: `${approvalId}-title` });
  const approvalWhen = h("p", { class: "muted" });
  const approvalPayload = h("textarea", { id: approvalId, class: "mono", rows: 3, spellcheck: "false" });
  const approvalResult = h("div");
  const approvalButton = h("button", { type: "submit", class: "primary" });
  let waitingFor = null;
  const approval = h("form", {
    class: "card waiting",
    hidden: true,
    "aria-labelledby": `${approvalId}-title`,
    onsubmit: async (event) => {
      event.preventDefault();
      await send(waitingFor, approvalPayload.value, approvalButton, approvalResult);
    },
  },
  approvalTitle, approvalWhen,
  h("label", { for: approvalId }, "Payload (JSON)"), approvalPayload,
  approvalResult,
  h("div", { class: "actions" }, approvalButton));

  // -- any signal ------------------------------------------------------------------------------
  const nameId = uid("signal-name");
  const payloadId = uid("signal-payload");
  const signalName = h("input", { id: nameId, type: "text", autocomplete: "off", spellcheck: "false", placeholder: "approval" });
  const signalPayload = h("textarea", { id: payloadId, class: "mono", rows: 3, spellcheck: "false", placeholder: "{ }" });
  const signalResult = h("div");
  const signalButton = h("button", { type: "submit" }, "Send signal");
  const signalForm = h("details", { class: "action" },
    h("summary", {}, "Send a signal"),
    h("form", {
      onsubmit: async (event) => {
        event.preventDefault();
        const name = signalName.value.trim();
        if (!name) {
          mount(signalResult, errorBox([{ code: "invalid_signal", message: "Name the signal." }], { title: "Not sent" }));
          signalName.focus();
          return;
        }
        await send(name, signalPayload.value, signalButton, signalResult);
      },
    },
    h("div", { class: "field" }, h("label", { for: nameId }, "Signal name"), signalName),
    h("div", { class: "field" }, h("label", { for: payloadId }, "Payload (JSON, optional)"), signalPayload),
    signalResult,
    h("div", { class: "actions" }, signalButton)));

  async function send(name, text, button, result) {
    const { payload, error } = parsePayload(text);
    if (error) {
      mount(result, errorBox([error], { title: "Not sent" }));
      return;
    }
    const label = button.textContent;
    busy(button, true, "Sending…");
    try {
      const answer = await api.signal(id, name, payload);
      // A 202 may warn (`not_waiting`: buffered, no step waits for it now).
      mount(result, warningBox(answer.errors));
      toast(`Delivered ${name}`, "ok");
      afterChange();
    } catch (err) {
      mount(result, errorBox(errorsFrom(err), { title: `${name} was not delivered` }));
    } finally {
      busy(button, false, label);
    }
  }

  // -- cancel ----------------------------------------------------------------------------------
  const reasonId = uid("reason");
  const reason = h("input", { id: reasonId, type: "text", value: "cancelled from the console", maxlength: 500 });
  const cancelResult = h("div");
  const confirmButton = h("button", { type: "submit", class: "danger" }, "Confirm cancel");
  const confirm = h("form", {
    class: "confirm",
    hidden: true,
    onsubmit: async (event) => {
      event.preventDefault();
      busy(confirmButton, true, "Cancelling…");
      try {
        await api.cancel(id, reason.value.trim());
        toast("Cancelling: the step in flight stops", "ok");
        confirm.hidden = true;
        afterChange();
      } catch (err) {
        mount(cancelResult, errorBox(errorsFrom(err), { title: "Not cancelled" }));
      } finally {
        busy(confirmButton, false, "Confirm cancel");
      }
    },
  },
  h("div", { class: "field" }, h("label", { for: reasonId }, "Reason"), reason),
  h("div", { class: "actions" },
    confirmButton,
    h("button", { type: "button", onclick: () => { confirm.hidden = true; cancelButton.focus(); } }, "Keep running")));
  const cancelButton = h("button", {
    type: "button",
    class: "danger",
    onclick: () => {
      confirm.hidden = false;
      reason.focus();
      reason.select();
    },
  }, "Cancel execution");
  const cancel = h("div", { class: "action" }, cancelButton, confirm, cancelResult);

  // -- rerun -----------------------------------------------------------------------------------
  const fromId = uid("from-step");
  const fromStep = h("select", { id: fromId });
  const versionId = uid("rerun-version");
  const versionOption = h("option", { value: "same" }, "the same version");
  const rerunVersion = h("select", { id: versionId },
    versionOption, h("option", { value: "latest" }, "the latest version"));
  const rerunResult = h("div");
  const rerunButton = h("button", { type: "submit" }, "Rerun");
  const rerun = h("form", {
    class: "action rerun",
    onsubmit: async (event) => {
      event.preventDefault();
      busy(rerunButton, true, "Starting…");
      mount(rerunResult);
      try {
        const started = await api.rerun(id, { fromStep: fromStep.value || undefined, version: rerunVersion.value });
        for (const warning of started.errors || []) toast(`${warning.code}: ${warning.message}`, "warn", 12000);
        toast(`Rerun started${fromStep.value ? ` from ${fromStep.value}` : ""}`, "ok");
        navigate(`/executions/${encodeURIComponent(started.execution_id)}`);
      } catch (err) {
        const list = errorsFrom(err);
        const missing = err.status === 404 && list[0]?.code === "not_found"
          || err.status === 405;
        mount(rerunResult, errorBox(list, {
          title: missing ? `Rerun is not available on this API (HTTP ${err.status})` : "Not rerun",
        }));
      } finally {
        busy(rerunButton, false, "Rerun");
      }
    },
  },
  h("div", { class: "field" },
    h("label", { for: fromId }, "Rerun from step"),
    fromStep,
    h("p", { class: "hint" }, "Earlier AI, HTTP and sub-workflow results that match are reused (not paid for again).")),
  h("div", { class: "field" }, h("label", { for: versionId }, "Run it on"), rerunVersion),
  rerunResult,
  h("div", { class: "actions" }, rerunButton));

  const controls = h("div", { class: "card actions-card" }, h("h2", {}, "Actions"),
    h("div", { class: "action-row" }, cancel, signalForm, rerun));
  const element = h("div", {}, approval, controls);
  let stepsSignature = "";

  return {
    element,
    update(status, records) {
      const running = status.status === "running";
      // The approval card: shown while a step waits; refilled only when what it waits for changes.
      if (status.waiting_for !== waitingFor) {
        waitingFor = status.waiting_for || null;
        approval.hidden = !running || !waitingFor;
        if (waitingFor) {
          approvalTitle.textContent = `Waiting for signal “${waitingFor}”`;
          approvalButton.textContent = `Send ${waitingFor}`;
          approvalPayload.value = JSON.stringify(DEFAULT_PAYLOADS[waitingFor] ?? { approved: true }, null, 2);
          mount(approvalResult);
        }
      }
      approval.hidden = !running || !waitingFor;
      approvalWhen.textContent = status.waiting_until
        ? `It times out at ${dateTime(status.waiting_until)}.`
        : "Send its payload to continue.";
      cancel.hidden = !running;
      signalForm.hidden = !running;
      rerun.hidden = running;
      versionOption.textContent = status.definition_version
        ? `the same version (v${status.definition_version})` : "the same version";
      // Rerun choices: "from the start" plus every step path the run went through.
      const paths = [...new Set(records.map((r) => r.path || r.step_id))];
      const signature = paths.join("\n");
      if (signature !== stepsSignature) {
        stepsSignature = signature;
        const chosen = fromStep.value;
        fromStep.replaceChildren(
          h("option", { value: "" }, "(automatic: reuse up to the failed step)"),
          ...paths.map((p) => h("option", { value: p, selected: p === chosen }, p)));
      }
    },
  };
}
