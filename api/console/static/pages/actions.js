// What can be done with an execution: approve / send the signal it waits for, send any
// signal, cancel it while it runs, rerun it from a chosen step once it has finished.
// Each form keeps what the user typed across the page's live refreshes: it is built once
// and only shown, hidden or refilled when the execution's state changes.

import { api } from "../api.js";
import { h, mount, uid } from "../dom.js";
import { dateTime } from "../format.js";
import { createPayloadForm } from "../payloadform.js";
import { navigate } from "../router.js";
import { errorBox, errorsFrom, toast, warningBox } from "../ui.js";

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
  const approvalFields = h("div");
  const approvalResult = h("div");
  const approvalButton = h("button", { type: "submit", class: "primary" });
  let waitingFor = null;
  let builtFor = null; // what the payload form was built from: the signal and its schema
  let payloadForm = null;
  const approval = h("form", {
    class: "card waiting",
    hidden: true,
    novalidate: true, // the API's own messages, shown on the fields, not the browser's
    "aria-labelledby": `${approvalId}-title`,
    onsubmit: async (event) => {
      event.preventDefault();
      mount(approvalResult);
      const { values, errors } = payloadForm.read();
      if (errors.length) {
        mount(approvalResult, problemsOf(payloadForm, errors, "Not sent"));
        return;
      }
      await send(waitingFor, values, approvalButton, approvalResult, payloadForm);
    },
  },
  approvalTitle, approvalWhen, approvalFields,
  approvalResult,
  h("div", { class: "actions" }, approvalButton));

  /** Every problem: on its field when the form has one, the others listed. */
  function problemsOf(form, errors, title) {
    const rest = form ? form.showErrors(errors) : errors;
    if (rest.length) return errorBox(rest, { title });
    return h("p", { class: "field-error", role: "alert" }, `${title}: see the fields above.`);
  }

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
        const { payload, error } = parsePayload(signalPayload.value);
        if (error) {
          mount(signalResult, errorBox([error], { title: "Not sent" }));
          return;
        }
        await send(name, payload, signalButton, signalResult);
      },
    },
    h("div", { class: "field" }, h("label", { for: nameId }, "Signal name"), signalName),
    h("div", { class: "field" }, h("label", { for: payloadId }, "Payload (JSON, optional)"), signalPayload),
    signalResult,
    h("div", { class: "actions" }, signalButton)));

  async function send(name, payload, button, result, form = null) {
    const label = button.textContent;
    busy(button, true, "Sending…");
    try {
      const answer = await api.signal(id, name, payload);
      form?.clear();
      // A 202 may warn (`not_waiting`: buffered, no step waits for it now).
      mount(result, warningBox(answer.errors));
      toast(`Delivered ${name}`, "ok");
      afterChange();
    } catch (err) {
      // A payload its schema refuses (422): every problem at its field; the run still waits.
      mount(result, problemsOf(form, errorsFrom(err), `${name} was not delivered`));
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
      // The approval card: shown while a step waits; its form is made again only when what
      // it waits for changes (the signal, or the schema of its payload).
      const schema = status.waiting_payload_schema ?? null;
      const waitSignature = JSON.stringify([status.waiting_for || null, schema]);
      if (waitSignature !== builtFor) {
        builtFor = waitSignature;
        waitingFor = status.waiting_for || null;
        if (waitingFor) {
          approvalTitle.textContent = `Waiting for signal “${waitingFor}”`;
          approvalButton.textContent = `Send ${waitingFor}`;
          payloadForm = createPayloadForm(schema);
          mount(approvalFields, payloadForm.element);
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
