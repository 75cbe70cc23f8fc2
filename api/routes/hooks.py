"""POST /api/hooks/{workflow_id}: start a run from a signed webhook.

No API key: the sender proves itself with ``X-Signature-256: sha256=<HMAC-SHA256 of the raw
body>`` using the secret the workflow's webhook trigger names in WEBHOOK_SECRETS. A missing or
wrong signature is 401 and starts nothing; so is a workflow without a webhook trigger (the
answer does not reveal which).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Header, Request, status

from api.auth import Principal
from api.deps import ServiceDep, StateDep
from api.errors import ApiError, parse_json_body
from api.limits import retry_after_header
from api.schemas import ErrorResponse, RunPublic
from api.store import DefinitionNotFound
from api.triggers import SIGNATURE_HEADER, signature_ok, webhook_secret
from workflows.errors import DefinitionError, TemplateError
from workflows.templating import VariableSubstitutor

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/hooks", tags=["triggers"])

_UNSIGNED = ApiError(
    401,
    "invalid_signature",
    f"missing or invalid {SIGNATURE_HEADER} header (sha256=<hex HMAC-SHA256 of the body>)",
)


@router.post(
    "/{workflow_id}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RunPublic,
    summary="Start a run from a webhook (HMAC-SHA256 signed)",
    description=f"The JSON body becomes `input_vars` (or is mapped by the trigger's "
    f"`input_vars` templates over `{{body}}`). Sign the raw body: `{SIGNATURE_HEADER}: "
    "sha256=<hex>`. An `Idempotency-Key` header makes redeliveries start nothing new.",
    responses={
        401: {"model": ErrorResponse, "description": "Missing or bad signature"},
        422: {"model": ErrorResponse, "description": "Body is not JSON or inputs do not match"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def receive_webhook(
    workflow_id: str,
    request: Request,
    state: StateDep,
    service: ServiceDep,
    signature: str | None = Header(None, alias=SIGNATURE_HEADER),
    idempotency_key: str | None = Header(None, alias="Idempotency-Key", max_length=200),
) -> RunPublic:
    wait = state.limiter.check(f"hook:{workflow_id}")
    if wait > 0:
        raise ApiError(
            429,
            "rate_limited",
            "too many webhook calls",
            headers={"Retry-After": retry_after_header(wait)},
        )
    body = await request.body()
    try:
        stored = state.store.get(workflow_id)
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
    if not signature_ok(secret, body, signature):
        raise _UNSIGNED
    payload: Any = parse_json_body(body) if body.strip() else {}
    if trigger.input_vars is None:
        if not isinstance(payload, dict):
            raise ApiError(422, "invalid_input", "the body must be a JSON object", "$")
        input_vars = payload
    else:
        try:
            input_vars = VariableSubstitutor({"body": payload}).render(trigger.input_vars)
        except TemplateError as err:
            raise ApiError(422, "invalid_input", str(err), "$") from None
    principal = Principal(
        name=f"webhook:{workflow_id}", role="runner", workflows=frozenset({workflow_id})
    )
    return await service.start(workflow_id, input_vars, principal, idempotency_key=idempotency_key)
