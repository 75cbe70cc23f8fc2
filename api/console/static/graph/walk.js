// One step's data walked along its kind's plan (kinds.js): what sits where the schema's
// roles are. Kept apart from model.js, which turns what is found into rows, arrows and
// columns; both stay free of any kind's name.

import { fill } from "./label.js";

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

/**
 * Everything the plan finds in one step: [{plan, value, env}] for role leaves (value undefined
 * when the field is absent) and [{word, plan, env}] for an enum word of a routing field.
 * env: {top (a field of the step itself), holder, path (relative JSON path), title (of the
 * step's field it is under), labels ([{templates, object}], innermost last), field}.
 */
export function findsOf(step, plan) {
  const out = [];
  visitObject(step, plan, { path: "", labels: [], top: true, title: null }, out);
  return out;
}

function visitObject(object, plan, env, out) {
  const labels = plan.selfLabel !== undefined && !env.top
    ? [...env.labels, { templates: plan.selfLabel, object }] : env.labels;
  for (const [name, field] of Object.entries(plan.props)) {
    visit(Object.hasOwn(object, name) ? object[name] : undefined, field, {
      top: env.top,
      holder: object,
      path: `${env.path}.${name}`,
      title: env.title ?? field.title,
      labels: field.label !== undefined ? [...labels, { templates: field.label, object }] : labels,
      field,
    }, out);
  }
}

function fits(plan, value) {
  if (plan.role === "step-id") return typeof value === "string";
  if (plan.role === "workflow-id") return typeof value === "string" || typeof value === "number";
  if (plan.role === "steps" || plan.items) return Array.isArray(value);
  if (plan.props) return isObject(value);
  return plan.alts ? plan.alts.some((alt) => fits(alt, value)) : false;
}

function visit(value, plan, env, out) {
  if (plan.role) {
    out.push({ plan, value: value === null ? undefined : value, env });
    return;
  }
  if (value === undefined || value === null) return;
  if (plan.alts) {
    if (typeof value === "string" && plan.words.includes(value)) {
      out.push({ word: value, plan, env });
      return;
    }
    const alt = plan.alts.find((a) => fits(a, value));
    if (alt) visit(value, alt, env, out);
    return;
  }
  if (plan.items) {
    if (!Array.isArray(value)) return;
    value.forEach((v, i) => visit(v, plan.items, { ...env, top: false, path: `${env.path}[${i}]` }, out));
    return;
  }
  if (plan.props && isObject(value)) visitObject(value, plan, { ...env, top: false }, out);
}

/** How a row reads: its nearest x-label, else the title of the step's field it is under. */
export function labelOf(env) {
  for (const { templates, object } of [...env.labels].reverse()) {
    const words = fill(templates, object);
    if (words) return words;
  }
  return String(env.title || "").toLowerCase();
}
