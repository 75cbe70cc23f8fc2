// Until the kinds' models carry their graph annotations (`x-role`, `x-flow`, `x-label`,
// `x-keywords`; kinds.js says what each means), this table supplies them for the schema
// exported today, by `$defs` model and field ("" is the model itself). An annotation the
// schema has wins, so the table may stay while the models are being annotated; once they
// are, this file and its one import in kinds.js go.

const STEP_ID = "step-id";

/** `next` and `on_error` are FlowMixin's: every kind that has them means the same. */
const FLOW = {
  next: { "x-role": STEP_ID, "x-flow": "next" },
  on_error: { "x-flow": "error" },
};

const TABLE = {
  Branch: { "": { "x-label": "if {when}" }, next: { "x-role": STEP_ID, "x-flow": "branch" } },
  ConditionStep: { default: { "x-role": STEP_ID, "x-flow": "default", "x-label": "otherwise" } },
  OnErrorNext: { next: { "x-role": STEP_ID } },
  OnErrorRoute: {
    "": { "x-label": "on {errors|any error}" },
    then: { "x-role": STEP_ID, "x-keywords": ["continue", "fail"] },
  },
  ParallelBranch: { steps: { "x-role": "steps", "x-label": "branch {id}" } },
  ForeachStep: {
    "": { "x-label": ["each {as|item} in {items}", "{concurrency} at once"] },
    steps: { "x-role": "steps", "x-label": "for each {as|item}" },
  },
  SubWorkflowStep: {
    "": { "x-label": ["runs workflow {workflow_id}", "v{version}"] },
    workflow_id: { "x-role": "workflow-id" },
  },
  AIStep: { "": { "x-label": ["{model}", "then {models}"] } },
  AgentStep: { "": { "x-label": ["{model}", "then {models}", "tools: {tools}"] } },
  HTTPStep: { "": { "x-label": "{method|GET} {url}" } },
  SetStep: { "": { "x-label": ["sets {values}", "computes {compute}"] } },
  DelayStep: { "": { "x-label": ["{seconds} s", "until {until}"] } },
  WaitForSignalStep: { "": { "x-label": ['signal "{signal}"', "times out after {timeout_seconds} s"] } },
  FailStep: { "": { "x-label": "{message}" } },
  ParallelStep: { "": { "x-label": "{branches} branches" } },
};

/** The rows of the table, and FLOW's for each step model with those fields. */
export function fallbackNotes(modelName, model, isStepModel) {
  const notes = { ...(TABLE[modelName] || {}) };
  if (isStepModel) {
    for (const [field, extra] of Object.entries(FLOW)) {
      if (model?.properties?.[field]) notes[field] = { ...extra, ...notes[field] };
    }
  }
  return notes;
}
