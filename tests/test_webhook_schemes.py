"""Real senders can call a webhook trigger: each scheme verified as its sender signs.

The deliveries are signed by the senders' own code (the `standardwebhooks`, `stripe` and
`slack_sdk` packages) or checked against the senders' published examples (GitHub's and
Slack's documented secret, payload and signature). Every scheme: a valid delivery, a wrong
signature, a stale timestamp (where the scheme has one), a redelivery, a rotated secret and a
filter, against the real API served by uvicorn and the real Temporal dev server.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import stripe
from pydantic import SecretStr
from slack_sdk.signature import SignatureVerifier
from standardwebhooks.webhooks import Webhook
from temporalio.client import Client

from activities.runtime.settings import Settings
from api.server.errors import ApiError
from api.server.triggers import signed_headers
from api.server.webhooks import SCHEMES
from api.server.webhooks.github_scheme import GitHubVerifier
from api.server.webhooks.slack_scheme import SlackVerifier
from api.server.webhooks.standard_scheme import StandardWebhooksVerifier
from api.server.webhooks.stripe_scheme import StripeVerifier
from api.server.webhooks.verifiers import SignedRequest
from tests.conftest import ADMIN_KEY, eventually, runs_on, serve_api
from workflows.definition import WEBHOOK_SCHEMES
from workflows.validation import check_definition

# GitHub's documented example ("Validating webhook deliveries").
GITHUB_SECRET = "It's a Secret to Everybody"
GITHUB_BODY = b"Hello, World!"
GITHUB_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
# Slack's documented example ("Verifying requests from Slack"): a slash command.
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SLACK_TIMESTAMP = 1531420618
SLACK_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
    b"channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
    b"command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands"
    b"%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
    b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
SLACK_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"


def whsec(seed: str) -> str:
    return "whsec_" + base64.b64encode(hashlib.sha256(seed.encode()).digest()).decode()


# Two secrets per scheme under one name: the old one and the new one of a rotation.
ROTATING = {
    "hmac": ["hmac-old", "hmac-new"],
    "standard-webhooks": [whsec("std-old"), whsec("std-new")],
    "github": ["github-old", "github-new"],
    "stripe": ["whsec_stripe_old", "whsec_stripe_new"],
    "slack": ["slack-old", "slack-new"],
}
WRONG = {
    "hmac": "hmac-wrong",
    "standard-webhooks": whsec("std-wrong"),
    "github": "github-wrong",
    "stripe": "whsec_stripe_wrong",
    "slack": "slack-wrong",
}
SIGNATURE_HEADERS = {
    "hmac": "X-Signature-256",
    "standard-webhooks": "webhook-signature",
    "github": "X-Hub-Signature-256",
    "stripe": "Stripe-Signature",
    "slack": "X-Slack-Signature",
}


def sender_headers(scheme: str, secret: str, delivery: str, body: bytes, at: int) -> dict[str, str]:
    """What each sender attaches, made by its own library where it ships one."""
    if scheme == "hmac":
        return signed_headers(secret.encode(), body, delivery, at)
    if scheme == "standard-webhooks":
        signature = Webhook(secret).sign(delivery, datetime.fromtimestamp(at, UTC), body.decode())
        return {
            "webhook-id": delivery,
            "webhook-timestamp": str(at),
            "webhook-signature": signature,
        }
    if scheme == "github":
        # GitHub's algorithm, which test_github_documented_example pins to GitHub's own example.
        digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return {
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": f"sha256={digest}",
        }
    if scheme == "stripe":
        header = stripe.WebhookSignature.generate_signature_header(body.decode(), secret, at)
        return {"Stripe-Signature": header}
    assert scheme == "slack"
    signature = SignatureVerifier(secret).generate_signature(timestamp=str(at), body=body)
    return {"X-Slack-Request-Timestamp": str(at), "X-Slack-Signature": signature}


def event(delivery: str, n: int, kind: str) -> bytes:
    """A delivery's body: Stripe reads its id from ``id``, Slack from ``event_id``."""
    return json.dumps({"id": delivery, "event_id": delivery, "type": kind, "n": n}).encode()


def receiver(scheme: str, **trigger: Any) -> dict[str, Any]:
    return {
        "id": "receiver",
        "inputs": {"type": "object", "properties": {"n": {"type": "integer"}}},
        "triggers": [{"type": "webhook", "scheme": scheme, "secret": "hook", **trigger}],
        "steps": [{"id": "mark", "type": "set", "values": {"seen": "{n}"}}],
    }


def with_secrets(settings: Settings, secrets: dict[str, Any]) -> Settings:
    return settings.model_copy(update={"webhook_secrets": SecretStr(json.dumps(secrets))})


async def save(url: str, document: dict[str, Any]) -> httpx.Response:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as admin:
        return await admin.put(f"/api/workflows/{document['id']}", json=document)


@pytest.mark.parametrize("scheme", WEBHOOK_SCHEMES)
async def test_each_scheme_valid_wrong_stale_redelivered_rotated_filtered(
    scheme: str, client: Client, settings: Settings, task_queue: str
) -> None:
    old, new = ROTATING[scheme]
    run = uuid.uuid4().hex
    configured = with_secrets(settings, {"hook": ROTATING[scheme]})
    document = receiver(scheme, filter='body.type == "wanted"', input_vars={"n": "{body.n}"})
    async with serve_api(configured, client) as url:
        assert (await save(url, document)).status_code == 201
        async with httpx.AsyncClient(base_url=url, timeout=30) as sender:

            async def deliver(
                secret: str, delivery: str, n: int, kind: str = "wanted", age: int = 0
            ) -> httpx.Response:
                delivery = f"{run}-{delivery}"  # delivery ids name executions in the namespace
                body = event(delivery, n, kind)
                signed = sender_headers(scheme, secret, delivery, body, int(time.time()) - age)
                headers = {**signed, "Content-Type": "application/json"}
                return await sender.post("/api/hooks/receiver", content=body, headers=headers)

            first = await deliver(old, "evt-1", 1)
            assert first.status_code == (200 if scheme == "slack" else 202), first.text
            execution_id = first.json()["execution_id"]
            # The sender retries (signed anew): 200, naming the first run, nothing new.
            again = await deliver(old, "evt-1", 1)
            assert again.status_code == 200, again.text
            assert again.json() == {"execution_id": execution_id, "duplicate": True}
            # Rotation: the new secret is accepted beside the old one.
            rotated = await deliver(new, "evt-2", 2)
            assert rotated.status_code == first.status_code, rotated.text
            assert rotated.json()["execution_id"] != execution_id

            wrong = await deliver(WRONG[scheme], "evt-3", 3)
            assert wrong.status_code == 401
            error = wrong.json()["errors"][0]
            assert error["code"] == "invalid_signature"
            assert error["message"].startswith(f"{SIGNATURE_HEADERS[scheme]} does not match")

            # A workflow without a webhook answers like a wrong signature: nothing is revealed.
            body = event(f"{run}-evt-9", 9, "wanted")
            good = sender_headers(scheme, old, f"{run}-evt-9", body, int(time.time()))
            nowhere = await sender.post("/api/hooks/nowhere", content=body, headers=good)
            assert nowhere.status_code == 401
            assert nowhere.json()["errors"][0]["message"] == error["message"]

            ignored = await deliver(old, "evt-4", 4, kind="unwanted")
            assert ignored.status_code == 200, ignored.text
            assert ignored.json() == {"ignored": True}

            if scheme != "github":  # GitHub signs no timestamp
                stale = await deliver(old, "evt-5", 5, age=1000)
                assert stale.status_code == 401
                assert stale.json()["errors"][0]["code"] == "timestamp_outside_tolerance"

    async def two_runs() -> bool:
        return len(await runs_on(client, task_queue)) == 2

    await eventually(two_runs)
    assert sorted(await runs_on(client, task_queue, 2)) == sorted(
        [execution_id, rotated.json()["execution_id"]]
    )


def test_the_registry_has_one_verifier_per_scheme_of_the_definition() -> None:
    assert sorted(SCHEMES) == sorted(WEBHOOK_SCHEMES)


def test_github_documented_example() -> None:
    headers = {"x-hub-signature-256": GITHUB_SIGNATURE, "x-github-delivery": "d-1"}
    verified = GitHubVerifier().verify(
        SignedRequest(headers, GITHUB_BODY, [GITHUB_SECRET], 300, time.time())
    )
    assert verified.delivery == "d-1"
    with pytest.raises(ApiError, match="X-Hub-Signature-256 does not match"):
        GitHubVerifier().verify(
            SignedRequest(headers, GITHUB_BODY + b" ", [GITHUB_SECRET], 300, time.time())
        )


def test_slack_documented_example() -> None:
    headers = {
        "x-slack-request-timestamp": str(SLACK_TIMESTAMP),
        "x-slack-signature": SLACK_SIGNATURE,
    }
    SlackVerifier().verify(
        SignedRequest(headers, SLACK_BODY, [SLACK_SECRET], 300, SLACK_TIMESTAMP + 30)
    )
    with pytest.raises(ApiError, match="X-Slack-Request-Timestamp is 301 s old"):
        SlackVerifier().verify(
            SignedRequest(headers, SLACK_BODY, [SLACK_SECRET], 300, SLACK_TIMESTAMP + 301)
        )
    # Slack's own library agrees with the example (and so with the deliveries it signs above).
    signer = SignatureVerifier(SLACK_SECRET)
    assert signer.generate_signature(timestamp=str(SLACK_TIMESTAMP), body=SLACK_BODY) == (
        SLACK_SIGNATURE
    )


def test_the_senders_libraries_accept_what_the_verifiers_accept() -> None:
    body = b'{"type":"x"}'
    now = int(time.time())
    secret = whsec("lib")
    headers = sender_headers("standard-webhooks", secret, "msg_1", body, now)
    Webhook(secret).verify(body, headers)
    lowered = {k.lower(): v for k, v in headers.items()}
    assert (
        StandardWebhooksVerifier().verify(SignedRequest(lowered, body, [secret], 300, now)).delivery
        == "msg_1"
    )
    # Several signatures in one header (the sender's own rotation): any one that matches.
    lowered["webhook-signature"] = "v1,bm90LWl0 v1a,ignored " + lowered["webhook-signature"]
    StandardWebhooksVerifier().verify(SignedRequest(lowered, body, [secret], 300, now))
    # Svix sends the same headers under its own names.
    svix = {name.replace("webhook-", "svix-"): value for name, value in lowered.items()}
    assert (
        StandardWebhooksVerifier().verify(SignedRequest(svix, body, [secret], 300, now)).delivery
        == "msg_1"
    )

    stripe_headers = sender_headers("stripe", "whsec_x", "evt_1", body, now)
    stripe.Webhook.construct_event(body.decode(), stripe_headers["Stripe-Signature"], "whsec_x")
    several = {
        "stripe-signature": f"t={now},v1={'0' * 64},"
        + stripe_headers["Stripe-Signature"].split(",", 1)[1]
    }
    StripeVerifier().verify(SignedRequest(several, body, ["whsec_x"], 300, now))


async def test_handshakes_forms_headers_and_bad_input(
    client: Client, settings: Settings, worker: Any, task_queue: str
) -> None:
    secrets = {
        "gh": ["github-secret", GITHUB_SECRET],
        "slack": SLACK_SECRET,
        "std": whsec("s"),
        "bad": "plain",
    }
    configured = with_secrets(settings, secrets)
    run = uuid.uuid4().hex
    github = receiver(
        "github", input_vars={"event": "{headers.x-github-event}", "ref": "{body.ref}"}
    )
    github["id"] = "gh"
    github["triggers"][0]["secret"] = "gh"
    github["inputs"] = {"type": "object", "properties": {"event": {}, "ref": {}}}
    github["steps"][0]["values"] = {"seen": "{event} {ref}"}
    slack = receiver("slack", input_vars={"command": "{body.command}", "text": "{body.text}"})
    slack["id"] = "sl"
    slack["triggers"][0]["secret"] = "slack"
    slack["inputs"] = {"type": "object", "properties": {"command": {}, "text": {}}}
    slack["steps"][0]["values"] = {"seen": "{command} {text}"}
    async with serve_api(configured, client) as url:
        pings = receiver("github", filter='headers["x-github-event"] == "ping"', input_vars={})
        pings.update(
            id="gh-ping", inputs=None, steps=[{"id": "a", "type": "set", "values": {"x": 1}}]
        )
        pings["triggers"][0]["secret"] = "gh"
        for document in (github, slack, pings):
            saved = await save(url, document)
            assert saved.status_code == 201, saved.text
        async with httpx.AsyncClient(base_url=url, timeout=30) as sender:
            # GitHub's form content type: payload=<JSON>; headers read by the templates.
            form = urlencode({"payload": json.dumps({"ref": "refs/heads/main"})}).encode()
            headers = sender_headers("github", "github-secret", f"{run}-1", form, 0)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            started = await sender.post("/api/hooks/gh", content=form, headers=headers)
            assert started.status_code == 202, started.text
            gh_run = started.json()["execution_id"]

            # A ping (sent when the webhook is created) starts nothing.
            ping = json.dumps({"zen": "Keep it logically awesome.", "hook_id": 1}).encode()
            headers = sender_headers("github", "github-secret", f"{run}-2", ping, 0)
            headers["X-GitHub-Event"] = "ping"
            answer = await sender.post("/api/hooks/gh", content=ping, headers=headers)
            assert (answer.status_code, answer.json()) == (200, {"ignored": True})
            # ... unless the trigger's filter wants it.
            answer = await sender.post("/api/hooks/gh-ping", content=ping, headers=headers)
            assert answer.status_code == 202, answer.text
            ping_run = answer.json()["execution_id"]

            # GitHub's documented delivery, under its documented secret (listed second, as in
            # a rotation): signed, but neither JSON nor a form, so 415 after the signature.
            headers = {
                "X-Hub-Signature-256": GITHUB_SIGNATURE,
                "X-GitHub-Delivery": f"{run}-3",
                "X-GitHub-Event": "push",
                "Content-Type": "text/plain",
            }
            answer = await sender.post("/api/hooks/gh", content=GITHUB_BODY, headers=headers)
            assert answer.status_code == 415, answer.text
            assert answer.json()["errors"][0]["code"] == "unsupported_media_type"
            # Badly signed, the same body is a 401: the signature is judged first.
            answer = await sender.post("/api/hooks/gh", content=GITHUB_BODY + b"!", headers=headers)
            assert answer.status_code == 401
            headers["X-Hub-Signature-256"] = "sha1=abc"
            answer = await sender.post("/api/hooks/gh", content=GITHUB_BODY, headers=headers)
            assert answer.status_code == 401
            message = answer.json()["errors"][0]["message"]
            assert message.startswith("X-Hub-Signature-256 must be sha256=<64 hex digits>")

            # Slack: the Events API's url_verification is answered with its challenge.
            challenge = json.dumps(
                {
                    "token": "t",
                    "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
                    "type": "url_verification",
                }
            ).encode()
            now = int(time.time())
            headers = sender_headers("slack", SLACK_SECRET, "", challenge, now)
            headers["Content-Type"] = "application/json"
            answer = await sender.post("/api/hooks/sl", content=challenge, headers=headers)
            assert answer.status_code == 200, answer.text
            assert answer.json() == {
                "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
            }
            # Slack's documented slash command: signed correctly, but from 2018.
            headers = {
                "X-Slack-Request-Timestamp": str(SLACK_TIMESTAMP),
                "X-Slack-Signature": SLACK_SIGNATURE,
                "Content-Type": "application/x-www-form-urlencoded",
            }
            answer = await sender.post("/api/hooks/sl", content=SLACK_BODY, headers=headers)
            assert answer.json()["errors"][0]["code"] == "timestamp_outside_tolerance"
            # The same command signed now: its fields are the body.
            headers = sender_headers("slack", SLACK_SECRET, "", SLACK_BODY, now)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            answer = await sender.post("/api/hooks/sl", content=SLACK_BODY, headers=headers)
            assert answer.status_code == 200, answer.text  # Slack's acknowledgement is a 200
            sl_run = answer.json()["execution_id"]
            assert answer.json()["text"] == f"started {sl_run}"
            headers["X-Slack-Signature"] = "v0=nothex"
            answer = await sender.post("/api/hooks/sl", content=SLACK_BODY, headers=headers)
            assert answer.json()["errors"][0]["message"].startswith(
                "X-Slack-Signature must be v0=<64 hex digits>"
            )

        admin_headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        async with httpx.AsyncClient(base_url=url, headers=admin_headers, timeout=30) as admin:

            async def outputs(execution_id: str) -> Any:
                state = (await admin.get(f"/api/executions/{execution_id}")).json()
                return state["outputs"] if state["status"] == "completed" else None

            assert (await eventually(lambda: outputs(gh_run)))["seen"] == "push refs/heads/main"
            assert (await eventually(lambda: outputs(sl_run)))["seen"] == "/webhook-collect "

            # Bad triggers are refused at save, each naming its field.
            cases = [
                ({"scheme": "svix"}, "$.triggers[0].scheme", None),
                (
                    {"scheme": "standard-webhooks", "secret": "bad"},
                    "$.triggers[0].secret",
                    "invalid_webhook_secret",
                ),
                (
                    {"scheme": "stripe", "secret": "bad"},
                    "$.triggers[0].secret",
                    "invalid_webhook_secret",
                ),
                ({"secret": "absent"}, "$.triggers[0].secret", "unknown_webhook_secret"),
                ({"filter": "body.type =="}, "$.triggers[0].filter", "invalid_condition"),
                ({"filter": "secrets.x == 1"}, "$.triggers[0].filter", "unknown_reference"),
            ]
            for trigger, path, code in cases:
                document = receiver(**{"scheme": "hmac", **trigger})
                refused = await admin.put("/api/workflows/receiver", json=document)
                assert refused.status_code == 422, (trigger, refused.text)
                error = refused.json()["errors"][0]
                assert error["path"] == path, (trigger, error)
                if code is not None:
                    assert error["code"] == code, (trigger, error)
            accepted = receiver("standard-webhooks", secret="std")
            assert (await admin.put("/api/workflows/receiver", json=accepted)).status_code == 201
    assert sorted(await runs_on(client, task_queue, 3)) == sorted([gh_run, sl_run, ping_run])


def test_the_documented_filters_and_trigger_are_valid() -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "webhooks.md").read_text()
    section = doc.split("## Filters, bodies and headers", 1)[1].split("\n## ", 1)[0]
    rows = [line.split(" | ") for line in section.splitlines() if line.startswith("| ")][1:]
    assert len(rows) == 4
    for row in rows:
        trigger = {"type": "webhook", "filter": row[1].strip("`"), "input_vars": {}}
        document = {
            "id": "doc",
            "triggers": [trigger],
            "steps": [{"id": "a", "type": "set", "values": {"x": 1}}],
        }
        _, problems = check_definition(document)
        assert problems == [], (row, problems)


@pytest.mark.parametrize(
    ("verifier", "headers", "named"),
    [
        (StripeVerifier(), {"stripe-signature": "v1=abc"}, "Stripe-Signature must be t="),
        (StripeVerifier(), {"stripe-signature": "t=soon,v1=abc"}, "Stripe-Signature t must be"),
        (
            StandardWebhooksVerifier(),
            {"webhook-id": "m", "webhook-timestamp": "1", "webhook-signature": "abc"},
            "webhook-signature must be space-separated",
        ),
        (
            StandardWebhooksVerifier(),
            {"webhook-id": "m", "webhook-signature": "v1,abc"},
            "webhook-timestamp is missing",
        ),
        (SlackVerifier(), {"x-slack-signature": "v0=" + "0" * 64}, "X-Slack-Request-Timestamp"),
        (GitHubVerifier(), {"x-hub-signature-256": GITHUB_SIGNATURE}, "X-GitHub-Delivery is"),
    ],
)
def test_a_malformed_signature_header_is_401_naming_the_header(
    verifier: Any, headers: dict[str, str], named: str
) -> None:
    with pytest.raises(ApiError) as refused:
        verifier.verify(SignedRequest(headers, b"{}", ["whsec_x"], 300, time.time()))
    assert refused.value.status_code == 401
    assert refused.value.errors[0]["message"].startswith(named), refused.value.errors
