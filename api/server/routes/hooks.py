"""POST /api/hooks/{workflow_id}: start a run from a signed webhook (docs/webhooks.md).

No API key: the sender proves itself with the secret the workflow's webhook trigger names in
WEBHOOK_SECRETS. The checks run in this order, each before anything that costs the sender:

1. the signature (``X-Signature-256`` over ``<X-Webhook-Timestamp>.<X-Webhook-Delivery>.<raw
   body>``): missing, malformed or wrong is 401, and so is a workflow without a webhook
   trigger (the answer does not reveal which). Failures are charged to the client address's
   failed-authentication throttle, never to the workflow's rate limit;
2. the timestamp, within WEBHOOK_TOLERANCE_SECONDS of the API's clock (401 otherwise);
3. the workflow's rate limit (429);
4. the delivery id: it names the execution (the API's Idempotency-Key path with Temporal's
   FAIL / REJECT_DUPLICATE policies), so Temporal refuses a second start of the same delivery
   whichever API process receives it, before or after a restart (409).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import APIRouter, Header, Request, status

from api.server.auth import Principal
from api.server.bodies import parse_json_body, request_body
from api.server.deps import AppState, StarterDep, StateDep
from api.server.errors import ApiError, DefinitionNotFound, DuplicateStart
from api.server.library import called_ids
from api.server.limits import retry_after_header
from api.server.metrics import api_metrics
from api.server.routes.responses import errors
from api.server.schemas import RunPublic
from api.server.triggers import (
    DELIVERY_HEADER,
    DELIVERY_ID,
    SIGNATURE_HEADER,
    TIMESTAMP,
    TIMESTAMP_HEADER,
    signature_ok,
    webhook_secret,
)
from workflows.definition import WebhookTrigger
from workflows.errors import DefinitionError, TemplateError
from workflows.templating import VariableSubstitutor

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/hooks", tags=["triggers"])

HOW_TO_SIGN = (
    f"send {TIMESTAMP_HEADER} (unix seconds), {DELIVERY_HEADER} (a unique id) and "
    f"{SIGNATURE_HEADER}: sha256=<hex HMAC-SHA256 of '<timestamp>.<delivery>.<raw body>'> "
    "made with the secret the webhook trigger names (see docs/webhooks.md)"
)
# The same answer for a wrong signature, an unknown workflow and a workflow without a webhook
# trigger: a caller without the secret learns nothing about which workflows exist.
_UNSIGNED = ApiError(401, "invalid_signature", f"{SIGNATURE_HEADER} does not match: {HOW_TO_SIGN}")


def _unsigned(problem: str) -> ApiError:
    return ApiError(401, "invalid_signature", f"{problem}: {HOW_TO_SIGN}")


@router.post(
    "/{workflow_id}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RunPublic,
    summary="Start a run from a webhook (HMAC-SHA256 signed, timestamped, one run per delivery)",
    description="The JSON body becomes `input_vars` (or is mapped by the trigger's "
    "`input_vars` templates over `{body}`). Send `X-Webhook-Timestamp` (unix seconds), "
    "`X-Webhook-Delivery` (a unique id: letters, digits, `_`, `:`, `-`, at most 128) and "
    "`X-Signature-256: sha256=<hex HMAC-SHA256 of '<timestamp>.<delivery>.<raw body>'>`. "
    "The timestamp must be within `WEBHOOK_TOLERANCE_SECONDS` (300) of the server's clock; a "
    "delivery id already received is 409 and starts nothing.",
    responses=errors(
        {
            401: "Missing or bad signature, stale timestamp",
            409: "This delivery id was already received",
            422: "Body is not JSON or inputs do not match",
            429: "Rate limit or too many failed attempts",
        }
    ),
    openapi_extra=request_body({"type": "object"}, required=True),
)
async def receive_webhook(
    workflow_id: str,
    request: Request,
    state: StateDep,
    starter: StarterDep,
    # Optional and unconstrained here, so that a missing or malformed value is a 401 naming
    # the header (from _authenticate, charged to the failed-attempt throttle), never a 422.
    signature: str | None = Header(None, alias=SIGNATURE_HEADER),
    timestamp: str | None = Header(None, alias=TIMESTAMP_HEADER),
    delivery: str | None = Header(None, alias=DELIVERY_HEADER),
) -> RunPublic:
    body = await request.body()
    try:
        trigger = await _authenticate(state, workflow_id, body, signature, timestamp, delivery)
    except ApiError as refused:
        raise state.auth_throttle.refuse(request, refused) from None
    assert delivery is not None  # _authenticate checked it
    bucket = f"hook:{workflow_id}"
    _rate_limit(state, bucket, workflow_id)
    input_vars = _input_vars(trigger, parse_json_body(body, blank={}))
    try:
        started = await starter.start(
            workflow_id,
            input_vars,
            await _principal(state, workflow_id),
            idempotency_key=delivery,
            started_by=f"webhook:{workflow_id}",
            refuse_duplicate=True,
        )
    except DuplicateStart as duplicate:
        # A replay started nothing: it must not use up the real sender's rate limit.
        state.limiter.refund(bucket)
        raise ApiError(
            409,
            "duplicate_delivery",
            f"{DELIVERY_HEADER} '{delivery}' was already received for workflow "
            f"'{workflow_id}' (execution {duplicate.execution_id}); nothing new was started. "
            "Give every new event its own delivery id; a redelivery of the same event can treat "
            "this answer as success.",
        ) from None
    api_metrics(request).started(workflow_id, "webhook")  # a new delivery: a new execution
    return started


def _rate_limit(state: AppState, bucket: str, workflow_id: str) -> None:
    wait = state.limiter.check(bucket)
    if wait > 0:
        raise ApiError(
            429,
            "rate_limited",
            f"too many webhook calls for '{workflow_id}'; retry after {retry_after_header(wait)} s "
            "(API_RATE_LIMIT_PER_MINUTE, API_RATE_LIMIT_BURST)",
            headers={"Retry-After": retry_after_header(wait)},
        )


def _input_vars(trigger: WebhookTrigger, payload: Any) -> Any:
    """The run's input: the body itself (a JSON object), or the trigger's templates over it."""
    if trigger.input_vars is None:
        if not isinstance(payload, dict):
            raise ApiError(422, "invalid_input", "the body must be a JSON object", "$")
        return payload
    try:
        return VariableSubstitutor({"body": payload}).render(trigger.input_vars)
    except TemplateError as err:
        raise ApiError(422, "invalid_input", str(err), "$") from None


async def _principal(state: AppState, workflow_id: str) -> Principal:
    """Who the delivery acts as. '/' cannot appear in an API key's name, so delivery ids and
    API Idempotency-Keys name different executions even if a key were called "webhook:<id>".
    The trigger acts with the authority of the definition's author, who could call the
    definition's sub-workflows when saving it: its scope is the workflow and those."""
    called = await called_ids((await state.store.get(workflow_id)).definition, state.store)
    return Principal(
        name=f"hook/{workflow_id}", role="runner", workflows=frozenset({workflow_id}) | called
    )


async def _authenticate(
    state: AppState,
    workflow_id: str,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    delivery: str | None,
) -> WebhookTrigger:
    """The workflow's webhook trigger if the request is signed, fresh and well formed."""
    for header, value in (
        (SIGNATURE_HEADER, signature),
        (TIMESTAMP_HEADER, timestamp),
        (DELIVERY_HEADER, delivery),
    ):
        if not value:
            raise _unsigned(f"{header} is missing")
    assert signature is not None and timestamp is not None and delivery is not None
    if not TIMESTAMP.fullmatch(timestamp):
        raise _unsigned(f"{TIMESTAMP_HEADER} must be the unix time in whole seconds")
    if not DELIVERY_ID.fullmatch(delivery):
        raise _unsigned(
            f"{DELIVERY_HEADER} must be 1 to 128 letters, digits, '_', ':' or '-' (no '.')"
        )
    try:
        stored = await state.store.get(workflow_id)
    except (DefinitionNotFound, DefinitionError):
        raise _UNSIGNED from None
    trigger = stored.definition.webhook()
    if trigger is None:
        raise _UNSIGNED
    secret = webhook_secret(state.settings, trigger.secret)
    if secret is None:
        logger.error(
            "webhook for %s names secret %r, which WEBHOOK_SECRETS lacks",
            workflow_id,
            trigger.secret,
        )
        raise _UNSIGNED
    if not signature_ok(secret, timestamp, delivery, body, signature):
        raise _UNSIGNED
    # Only now is the timestamp trusted enough to judge: it is covered by the signature.
    tolerance = state.settings.webhook_tolerance_seconds
    age = int(time.time()) - int(timestamp)
    if abs(age) > tolerance:
        when = f"{age} s old" if age > 0 else f"{-age} s in the future"
        raise ApiError(
            401,
            "timestamp_outside_tolerance",
            f"{TIMESTAMP_HEADER} is {when}; the tolerance is {tolerance} s "
            "(WEBHOOK_TOLERANCE_SECONDS). Sign each delivery (and each retry) with the current "
            "unix time, and keep the sender's clock in sync.",
        )
    return trigger
