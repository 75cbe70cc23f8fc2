"""A run's side of AI_RATE_LIMITS: before it schedules an AI call, it asks for the call's turn
(a local activity: the worker knows the limits) and sleeps until then, visible as
``waiting_for: "rate_limit"`` (and a timer in the Temporal UI). The activity's first attempt
takes the turn; a retry or a late start asks for a new one itself (activities/rate_limits.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from workflows import versions
    from workflows.flow.messages import RESERVE_AI_TURN, WAITING_RATE_LIMIT, AITurnRequest
    from workflows.kinds.base import Waiting
    from workflows.messages import AIRequest, RateTurn

# The version marker (listed in workflows/interpreter/patches.py): runs that started before it
# schedule their AI calls without asking for a turn.
AI_RATE_LIMITS = "ai-rate-limits"
# The version marker of scheduling the call TURN_LEAD before its turn, the activity waiting
# out the rest (older runs slept until the turn itself, and their calls, started late by the
# timer's and the worker's delays, often had to ask for a new turn a window later), and of
# asking again after a timer when the limiter is busy (TURN_ASK_RETRY).
AI_TURN_LEAD = "ai-turn-lead"

# How long before its turn a call is scheduled: a Temporal timer fires up to about a second
# late, and a busy worker takes time to run the workflow task and start the activity, which
# then sends at the turn itself. At most a quarter of the step's timeout (the activity's
# timeout counts the wait).
TURN_LEAD = timedelta(seconds=3)
# Asking for a turn (a local activity): in a burst of calls each worker asks a limiter a few
# at a time, and an ask that finds them all busy gives up at once (a local activity holds the
# run's workflow task, and with it one of the worker's workflow-task slots, which the limiter
# needs to answer): the run asks again after a timer, which frees its workflow task meanwhile.
TURN_ASK_TIMEOUT = timedelta(seconds=10)
TURN_ASK_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=1.5,
    maximum_interval=timedelta(seconds=5),
)
# Retries later than this wait on a timer, not inside the workflow task (all of them).
TURN_ASK_RETRY_BY_TIMER = timedelta(milliseconds=500)

# With no `max_tokens`, what a call's answer is counted for until the provider says.
DEFAULT_COMPLETION_TOKENS = 256


def estimated_tokens(request: AIRequest) -> int:
    """What a call may count for before the provider says: about four characters a token of
    the prompt, plus the most the answer may hold."""
    prompt = len(json.dumps(request.messages, separators=(",", ":"))) // 4
    return prompt + (request.max_tokens or DEFAULT_COMPLETION_TOKENS)


async def wait_for_turn(
    set_waiting: Callable[[Waiting | None], None],
    request: AIRequest,
    step_timeout: timedelta | None = None,
) -> RateTurn | None:
    """The call's turn (None: no limit applies to its model), once it has come; for a run
    with AI_TURN_LEAD, once it is a lead away: the activity waits the rest, and the run shows
    the wait (``until`` its turn) until the caller clears it when the call's activity ends."""
    early = versions.patched_since_settled(AI_TURN_LEAD)
    turn: RateTurn | None = await workflow.execute_local_activity(
        RESERVE_AI_TURN,
        AITurnRequest(
            model=request.model,
            tokens=estimated_tokens(request),
            request_id=str(workflow.uuid4()),
        ),
        result_type=RateTurn,
        start_to_close_timeout=TURN_ASK_TIMEOUT if early else timedelta(seconds=10),
        retry_policy=TURN_ASK_RETRY if early else None,
        local_retry_threshold=TURN_ASK_RETRY_BY_TIMER if early else None,
        summary="rate limit: ask for a turn",
    )
    if turn is None:
        return None
    wait = turn.at - workflow.now()
    if early and wait > timedelta(0):
        set_waiting(Waiting(signal=WAITING_RATE_LIMIT, until=turn.at))
        workflow.set_current_details(f"waiting for a turn under the rate limit of {turn.resource}")
        wait -= min(TURN_LEAD, (step_timeout or TURN_LEAD * 4) / 4)
        if wait > timedelta(0):
            try:
                await workflow.sleep(wait, summary=f"rate limit: {turn.resource}")
            except BaseException:
                set_waiting(None)
                raise
    elif wait > timedelta(0):
        set_waiting(Waiting(signal=WAITING_RATE_LIMIT, until=turn.at))
        workflow.set_current_details(f"waiting for a turn under the rate limit of {turn.resource}")
        try:
            await workflow.sleep(wait, summary=f"rate limit: {turn.resource}")
        except BaseException:
            set_waiting(None)
            raise
        set_waiting(None)
    return turn
