"""POST /api/hooks/{workflow_id}: start a run from a signed webhook (docs/webhooks.md).

No API key: the sender proves itself with the secret the workflow's webhook trigger names in
WEBHOOK_SECRETS, signed as its ``scheme`` says (api/server/webhooks/). The checks run in this
order, each before anything that costs the sender:

1. the signature, by the scheme's verifier, with every secret listed under the name: missing,
   malformed or wrong is 401, and so is a workflow without a webhook trigger (answered as a
   wrong signature of the scheme the caller used). Failures are charged to the client
   address's failed-authentication throttle, never to the workflow's rate limit;
2. the signed timestamp, within WEBHOOK_TOLERANCE_SECONDS of the API's clock (401 otherwise);
3. the body: JSON or a form (415 for anything else), then the sender's handshake (Slack's
   ``url_verification`` challenge; GitHub's ``ping``) answered 200 with no run;
4. the trigger's ``filter``: false is 200 ``{"ignored": true}``, no run;
5. the workflow's rate limit (429);
6. the delivery id: it names the execution (the API's Idempotency-Key path with Temporal's
   FAIL / REJECT_DUPLICATE policies), so Temporal refuses a second start of the same delivery
   whichever API process receives it, before or after a restart. A redelivery answers 200
   ``{"execution_id": <the first run>, "duplicate": true}``: senders retry anything else.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse

from api.server.auth import Principal
from api.server.bodies import request_body
from api.server.deps import AppState, StarterDep, StateDep
from api.server.errors import ApiError, DefinitionNotFound, DuplicateStart
from api.server.library import called_ids
from api.server.limits import retry_after_header
from api.server.metrics import api_metrics
from api.server.routes.responses import errors
from api.server.schemas import RunPublic
from api.server.webhooks import Verifier, guessed, verifier_for
from api.server.webhooks.filters import filtered_out
from api.server.webhooks.payloads import delivery_body, delivery_headers
from api.server.webhooks.secrets import secrets_named
from api.server.webhooks.verifiers import SignedRequest, Verified
from workflows.definition import WebhookTrigger
from workflows.errors import DefinitionError, TemplateError
from workflows.templating import VariableSubstitutor

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/hooks", tags=["triggers"])


@router.post(
    "/{workflow_id}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RunPublic,
    summary="Start a run from a webhook (signed as its sender signs, one run per delivery)",
    description="Verified by the trigger's `scheme`: `hmac` (`X-Webhook-Timestamp`, "
    "`X-Webhook-Delivery`, `X-Signature-256: sha256=<hex HMAC-SHA256 of "
    "'<timestamp>.<delivery>.<raw body>'>`), `standard-webhooks`, `github`, `stripe` or "
    "`slack` (docs/webhooks.md). The JSON or form body becomes `input_vars` (or is mapped by "
    "the trigger's `input_vars` templates over `{body}` and `{headers}`). A delivery already "
    'received answers 200 `{"execution_id", "duplicate": true}` and starts nothing; one the '
    'trigger\'s `filter` refuses answers 200 `{"ignored": true}`.',
    responses=errors(
        {
            401: "Missing, malformed or bad signature, stale timestamp",
            415: "The body is neither JSON nor form-encoded",
            422: "Body is not valid JSON or inputs do not match",
            429: "Rate limit or too many failed attempts",
        }
    )
    | {200: {"description": "A redelivery, a filtered-out delivery or a sender's handshake"}},
    openapi_extra=request_body({"type": "object"}, required=True),
)
async def receive_webhook(
    workflow_id: str, request: Request, state: StateDep, starter: StarterDep
) -> Any:
    raw = await request.body()
    headers = delivery_headers(request.headers)
    try:
        trigger, verifier, verified = await _authenticate(state, workflow_id, headers, raw)
    except ApiError as refused:
        raise state.auth_throttle.refuse(request, refused) from None
    body = delivery_body(headers.get("content-type"), raw, verifier.json_form_field)
    reply = verifier.reply(headers, body)
    if reply is not None and not (reply.unless_filter and trigger.filter is not None):
        return JSONResponse(reply.body)
    if trigger.filter is not None:
        ignored = filtered_out(trigger.filter, headers, body)
        if ignored is not None:
            return JSONResponse(ignored)
    delivery = verifier.delivery_id(verified, headers, body)
    bucket = f"hook:{workflow_id}"
    _rate_limit(state, bucket, workflow_id)
    try:
        started = await starter.start(
            workflow_id,
            _input_vars(trigger, body, headers),
            await _principal(state, workflow_id),
            idempotency_key=delivery,
            started_by=f"webhook:{workflow_id}",
            refuse_duplicate=True,
        )
    except DuplicateStart as duplicate:
        # A redelivery started nothing: it must not use up the real sender's rate limit.
        state.limiter.refund(bucket)
        return JSONResponse({"execution_id": duplicate.execution_id, "duplicate": True})
    api_metrics(request).started(workflow_id, "webhook")  # a new delivery: a new execution
    if verifier.started_status != status.HTTP_202_ACCEPTED:
        answer = verifier.started(started.model_dump(mode="json"))
        return JSONResponse(answer, status_code=verifier.started_status)
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


def _input_vars(trigger: WebhookTrigger, payload: Any, headers: dict[str, str]) -> Any:
    """The run's input: the body itself (an object), or the trigger's templates over the body
    and the headers."""
    if trigger.input_vars is None:
        if not isinstance(payload, dict):
            raise ApiError(422, "invalid_input", "the body must be a JSON object", "$")
        return payload
    try:
        return VariableSubstitutor({"body": payload, "headers": headers}).render(trigger.input_vars)
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
    state: AppState, workflow_id: str, headers: dict[str, str], body: bytes
) -> tuple[WebhookTrigger, Verifier, Verified]:
    """The workflow's webhook trigger, its verifier and what it verified, if the request is
    signed with a secret the trigger names and fresh (ApiError 401 otherwise)."""
    trigger: WebhookTrigger | None = None
    with contextlib.suppress(DefinitionNotFound, DefinitionError):
        trigger = (await state.store.get(workflow_id)).definition.webhook()
    if trigger is None:
        # Judged like a wrong signature of the caller's scheme: nothing tells it apart.
        verifier = guessed(headers)
        verifier.verify(_signed(state, headers, body, []))
        raise verifier.mismatch()
    verifier = verifier_for(trigger.scheme)
    secrets = secrets_named(state.settings, trigger.secret)
    if secrets is None:
        logger.error(
            "webhook for %s names secret %r, which WEBHOOK_SECRETS lacks",
            workflow_id,
            trigger.secret,
        )
        secrets = []
    return trigger, verifier, verifier.verify(_signed(state, headers, body, secrets))


def _signed(
    state: AppState, headers: dict[str, str], body: bytes, secrets: list[str]
) -> SignedRequest:
    tolerance = state.settings.webhook_tolerance_seconds
    return SignedRequest(headers, body, secrets, tolerance, time.time())
