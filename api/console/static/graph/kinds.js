// The step kinds, read from the definition's JSON Schema (exported from the kinds' pydantic
// models, the one place a kind is described), so a kind added to the engine is drawn without
// a change here. The kinds are the `steps` union's members, keyed by their `type` constant.
// For each, a plan says where in a step's data the things the graph draws are; the schema
// says it with these annotations, on a field (or the type it names) or on a model:
//
//   "x-role": "step-id"      a step of the same list (or "end") the flow can go to
//             "steps"        a nested list of steps: a column inside the node's box
//             "workflow-id"  a saved workflow: the node links to its graph
//   "x-flow": "next" | "branch" | "default" | "error"
//                            when the flow takes the step ids at or under it: "next" is the
//                            node's own arrow; "next" and "default" left out mean the
//                            following step; without "x-flow", a plain jump
//   "x-keywords": [...]      words a step-id field takes that are no step ("continue")
//   "x-label": template(s)   the words (label.js): on a step model, the line under the id;
//                            on a field or a model holding step ids, the row of the arrow;
//                            on a steps field, the column's title
//
// An array whose items are the step union is a list of steps even without "x-role". A field's
// `enum` words next to step-id shapes (on_error's "continue") are shown, unless they are the
// field's default. The annotations come from the kinds' models (json_schema_extra).

const NOTE_KEYS = ["x-role", "x-flow", "x-label", "x-keywords"];
const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

function notesOf(node) {
  const notes = {};
  for (const key of NOTE_KEYS) if (node[key] !== undefined) notes[key] = node[key];
  return notes;
}

/** The union's members: [[type, model name], ...], from its discriminator or its refs. */
function unionMembers(union, defs) {
  const prop = union?.discriminator?.propertyName || "type";
  const refs = [
    ...Object.values(union?.discriminator?.mapping || {}),
    ...(union?.oneOf || union?.anyOf || []).map((alt) => alt?.$ref),
  ].filter((ref) => typeof ref === "string" && ref.startsWith("#/$defs/"));
  const members = new Map();
  for (const ref of refs) {
    const name = ref.slice("#/$defs/".length);
    const type = defs[name]?.properties?.[prop]?.const;
    if (typeof type === "string" && !members.has(type)) members.set(type, name);
  }
  return members;
}

/**
 * kindsFromSchema(schema) -> {types, of(type) -> kind|null}
 * kind: {type, model, label, required, plan}; plan nodes:
 *   {role, flow, keywords, label}            a leaf (step-id, steps, workflow-id)
 *   {alts: [plan], words, flow, label}        alternatives (anyOf/oneOf), with their enum words
 *   {items: plan, label}                      an array
 *   {props: {name: field plan}, selfLabel}    an object (a model); field plans add
 *                                             {name, title, optional, fieldDefault}
 * Only what leads to a role is kept. `label` is a field's, filled from the object holding
 * the field; `selfLabel` a model's, filled from the object itself.
 */
export function kindsFromSchema(schema) {
  const defs = isObject(schema?.$defs) ? schema.$defs : {};
  const union = schema?.properties?.steps?.items;
  const members = unionMembers(union, defs);
  const unionRefs = JSON.stringify([...members.values()].sort());

  const isStepList = (node) => {
    const items = node.items;
    if (!isObject(items)) return false;
    const refs = unionMembers(items, defs);
    return refs.size > 0 && JSON.stringify([...refs.values()].sort()) === unionRefs;
  };

  /** A field's schema (its notes merged in) to a plan; `flow`: the nearest "x-flow" above. */
  function compile(node, flow, stack) {
    if (!isObject(node)) return null;
    const notes = notesOf(node);
    const here = notes["x-flow"] || flow;
    const role = notes["x-role"] || (isStepList(node) ? "steps" : null);
    if (role) {
      const keywords = Array.isArray(notes["x-keywords"]) ? notes["x-keywords"] : [];
      return { role, flow: here, keywords, label: notes["x-label"] };
    }
    if (typeof node.$ref === "string") {
      const name = node.$ref.startsWith("#/$defs/") ? node.$ref.slice("#/$defs/".length) : null;
      if (!name || !isObject(defs[name]) || stack.includes(name)) return null;
      const own = notesOf(defs[name]);
      return compileModel(defs[name], name, own, notes, notes["x-flow"] || own["x-flow"] || flow,
        [...stack, name]);
    }
    const alternatives = node.anyOf || node.oneOf;
    if (Array.isArray(alternatives)) {
      const plans = [];
      const words = [];
      for (const alt of alternatives) {
        if (Array.isArray(alt?.enum)) words.push(...alt.enum.filter((w) => typeof w === "string"));
        else if (typeof alt?.const === "string") words.push(alt.const);
        const plan = compile(alt, here, stack);
        if (plan) plans.push(plan);
      }
      if (!plans.length) return null;
      if (plans.length === 1 && !words.length) {
        const [only] = plans;
        return { ...only, label: notes["x-label"] ?? only.label };
      }
      return { alts: plans, words, flow: here, label: notes["x-label"] };
    }
    if (isObject(node.items)) {
      const items = compile(node.items, here, stack);
      return items ? { items, label: notes["x-label"] } : null;
    }
    if (isObject(node.properties)) return compileModel(node, null, {}, notes, here, stack);
    return null;
  }

  function compileModel(model, name, own, fieldNotes, flow, stack) {
    const required = new Set(Array.isArray(model.required) ? model.required : []);
    const props = {};
    for (const [field, node] of Object.entries(isObject(model.properties) ? model.properties : {})) {
      if (!isObject(node)) continue;
      const notes = notesOf(node);
      const plan = compile({ ...node, ...notes }, flow, stack);
      if (!plan) continue;
      props[field] = {
        ...plan,
        name: field,
        title: typeof node.title === "string" ? node.title : field,
        optional: !required.has(field),
        fieldDefault: node.default,
      };
    }
    if (!Object.keys(props).length) return null;
    return { props, selfLabel: own["x-label"], label: fieldNotes["x-label"] };
  }

  const kinds = new Map();
  for (const [type, name] of members) {
    const model = defs[name];
    const own = notesOf(model);
    const plan = compileModel(model, name, own, {}, undefined, [name]) || { props: {} };
    kinds.set(type, {
      type,
      model: name,
      label: own["x-label"],
      required: Array.isArray(model.required) ? model.required : [],
      plan,
    });
  }
  return {
    types: [...kinds.keys()],
    of: (type) => (typeof type === "string" && kinds.get(type)) || null,
  };
}
