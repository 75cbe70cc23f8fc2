"""Version markers (``workflow.patched``) of the behaviour changes runs in flight must not see.

Each marker is asked for where the behaviour it guards begins; a run whose history lacks it
(it started before the change) keeps the old behaviour, and every committed history in
tests/histories must still replay. New markers go here, with why they exist. A run that
records the newest settling marker (SETTLING, asked first) takes every older behaviour
without its marker (workflows/versions.py). A new marker is added to the front of SETTLING;
runs that recorded an older one then ask only the markers added after it.
"""

from __future__ import annotations

from workflows import versions
from workflows.flow.turns import AI_RATE_LIMITS as AI_RATE_LIMITS
from workflows.flow.turns import AI_TURN_LEAD as AI_TURN_LEAD
from workflows.kinds.foreach import SHARES_WRITE_LOGS as SHARES_WRITE_LOGS

# Log writes are batched: records of steps that run inside the workflow (set, condition,
# fail) wait for the next step that waits on the outside world (or for LOG_BATCH of them), so
# a 5,000-iteration loop costs tens of log writes, not 10,000. Nothing is lost by waiting:
# those steps are recomputed identically on replay.
BATCHED_LOGS = "batched-log-writes"
# Activity steps carry the log records not yet written (the batched ones and the previous
# step's) and their activity writes them alongside its call: no log-writing local activity per
# step, no extra workflow activation, and the write overlaps the step's own wait. The first
# carrier (or the first flush) also creates the log. Runs with this marker batch as well (the
# older patch is then not asked for, so not recorded). Which kinds carry: their `carries_log`.
ACTIVITIES_CARRY_LOG = "activities-carry-log-records"
# AI spend is published in search attributes as it grows (older runs did not upsert them).
USAGE_ATTRIBUTES = "ai-usage-attributes"
# The final log write is repeated when Temporal's cancel cancels it (older runs closed with the
# log still saying running).
FINAL_WRITE_OUTLIVES_CANCEL = "final-log-write-outlives-cancel"
# An unexpected error in the interpreter fails the run (older runs failed the workflow task).
ENGINE_ERRORS_FAIL_RUN = "engine-errors-fail-run"
# AI calls in flight reserve what a call has cost, so concurrent calls cannot all start on a
# budget that one of them uses up (budget.py); older runs checked only the spent.
BUDGET_RESERVATIONS = "budget-reservations"
# A step whose activity finished after its cancel was asked for ends cancelled (older runs
# took the late result and let the branch run on past its cancellation).
LATE_RESULTS_STOP = "late-results-stop"
# Templates read a digits-only path segment with a leading zero ({items.01}) as plain text, as
# RFC 6901 has it (older runs read it as index 1); workflows/templating.py. Decided once when
# an execution starts; its continued runs and foreach shares are handed the decision.
STRICT_LIST_INDEXES = "strict-list-indexes"
# CEL by the conformant evaluator (workflows/conditions.py). Decided once, when an execution
# starts, and carried across continue-as-new: a run never changes semantics on the way.
CEL_CONFORMANT = "cel-conformant"
# No action Temporal makes redundant (each is billed on Temporal Cloud): the deadline's timer
# starts only when a wait could outlast the time left, activities are bounded by the deadline
# instead (workflows/deadline.py); the final WorkflowStatus is written only for a cancelled
# run (Temporal's ExecutionStatus says completed and failed). Older runs armed the timer at
# once and wrote every final status. A settling marker: it settles every marker above it, and
# the two below (added in the same release).
FEWER_ACTIONS = "fewer-actions"

# A run of a definition with `concurrency` waits for a place from its key's coordinator before
# its first step and hands it back when it ends (workflows/interpreter/concurrency.py).
CONCURRENCY_KEYS = "concurrency-keys"

# A run holding a concurrency place hands it on quicker: QUICK_HAND_OFF, defined in
# workflows/interpreter/concurrency.py where it is asked for (writes the log while the run
# waits; the release before the last log writes). Newer than the settling markers, it is asked
# of every keyed run (``versions.patched_since_settled``).

# The concurrency coordinator (its own workflow) asks LATE_ANSWERS_SIGNALLED, defined in
# workflows/flow/coordinator.py where it is asked for: a place an update gives to a run that
# asked before by signal is signalled too; and ONE_LIVENESS_TIMER, beside it.

# An AI call under AI_RATE_LIMITS is scheduled a lead before its turn and its activity waits
# out the rest: AI_TURN_LEAD, defined in workflows/flow/turns.py (imported above). Newer than
# the settling markers, it is asked of every run that makes such a call, settled or not
# (``versions.patched_since_settled``).

# AI calls ask for a turn under AI_RATE_LIMITS before they are scheduled (a local activity,
# then a timer while the turn has not come): AI_RATE_LIMITS, defined in workflows/flow/turns.py
# where it is asked for (imported above).

# The shares of a large foreach write their step records to the execution log themselves:
# SHARES_WRITE_LOGS, defined in workflows/kinds/foreach.py where it is asked for.

# A run stopped by the `cancel` signal waits up to 10 s for Temporal's own cancel before it
# closes, so Temporal closes it as Canceled (RunEnding.await_temporal_cancel); older runs closed
# at once and, when the API's cancel came after, Temporal showed them Failed. Newer than the
# settling markers: asked of every run that ends by the signal.
CANCEL_AWAITS_TEMPORAL = "cancel-awaits-temporal-cancel"

# The settling markers, newest first: a new run records only the first (workflows/versions.py).
SETTLING = (SHARES_WRITE_LOGS, FEWER_ACTIONS)


def strict_indexes(handed: bool | None) -> bool:
    """How this run's templates read ``{items.01}``: as the run it continues (or the foreach
    step it runs a share of) did, or, when it starts an execution (or its parent predates the
    field), as the marker says: a run whose history has no marker started before the rule and
    keeps reading it as index 1."""
    if handed is not None:
        return handed
    return versions.patched(STRICT_LIST_INDEXES)


def cel_conformant(handed: bool | None) -> bool:
    """Which CEL evaluator this run uses: its predecessor's, or the marker's verdict."""
    if handed is not None:
        return handed
    return versions.patched(CEL_CONFORMANT)
