"""The pure parts of the ops findings, without a server: the status answer's summaries
(workflows/status_view.py), the browser guards (api/server/web_security.py) and a cron's tightest
gap (api/server/schedule_checks.py). The real stack exercises each in test_bounded_status.py,
test_browser_guards.py and test_schedule_limits.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from temporalio.client import (
    ScheduleCalendarSpec,
    ScheduleIntervalSpec,
    ScheduleRange,
    ScheduleSpec,
)

from api.server.schedule_checks import tightest_gap
from api.server.web_security import CrossSiteGuard, origin_of
from workflows.messages import ExecutionState, StatusRequest, StepRecord
from workflows.status_view import SUMMARY, Sizes, json_bytes, size_upto, status_view

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=6),
    max_leaves=40,
)  # fmt: skip


@given(JSON, st.integers(min_value=0, max_value=2000))
def test_size_upto_is_the_json_size_or_says_it_is_over(value: Any, cap: int) -> None:
    size = json_bytes(value)
    found = size_upto(value, cap)
    if size <= cap:
        assert found == size
    else:
        assert found > cap


def state(outputs: dict[str, Any], steps: list[StepRecord] | None = None) -> ExecutionState:
    now = datetime.now(UTC)
    return ExecutionState(
        execution_id="e", run_id="r", workflow_id="w", status="running", started_at=now,
        outputs=outputs, steps=steps or [],
    )  # fmt: skip


def test_large_values_become_summaries_and_small_fields_stay() -> None:
    big = {"items": [{"n": i, "t": "x" * 50} for i in range(2000)], "total": 2000}
    http = {"status": 200, "headers": {"a": "b"}, "json": big}
    record = StepRecord(seq=0, step_id="s", name="s", type="http",
                        start_time=datetime.now(UTC), output_vars={"r": http})  # fmt: skip
    view = status_view(state({"r": http, "n": 1, "text": "y" * 10_000}, [record]))
    assert view.summarised == ["r", "text"]
    assert view.outputs["r"]["status"] == 200 and view.outputs["r"]["headers"] == {"a": "b"}
    about = view.outputs["r"]["json"][SUMMARY]
    assert about == {
        "type": "object",
        "bytes": json_bytes(big),
        "length": 2,
        "keys": ["items", "total"],
    }
    text = view.outputs["text"][SUMMARY]
    assert text["type"] == "string" and text["length"] == 10_000 and text["preview"] == "y" * 100
    assert view.outputs["n"] == 1
    assert SUMMARY in view.steps[0].output_vars["r"]["json"]
    assert record.output_vars["r"]["json"] is big  # the run's own record is untouched
    assert len(view.model_dump_json()) < 4096


def test_the_budget_bounds_the_answer_however_many_values() -> None:
    many = {f"v{i}": "z" * 3000 for i in range(200)}  # each under 4 KiB, 600 kB in all
    view = status_view(state(many))
    kept = [k for k, v in view.outputs.items() if isinstance(v, str)]
    assert 15 <= len(kept) <= 22  # 64 KiB worth
    assert len(view.model_dump_json()) < 128 * 1024
    assert view.outputs["v199"][SUMMARY]["bytes"] == 3002
    tiny = status_view(state({**many, "flag": True}))
    assert tiny.outputs["flag"] is True  # smaller than its summary: always kept


def test_full_answers_names_and_the_limit() -> None:
    outputs = {"a": "x" * 10_000, "b": "y" * 10_000}
    full = status_view(state(outputs), StatusRequest(variables="full"))
    assert full.outputs == outputs and full.summarised == []
    one = status_view(state(outputs), StatusRequest(variables="full", names=["b"]))
    assert one.outputs["b"] == outputs["b"] and one.summarised == ["a"]
    over = status_view(state(outputs), StatusRequest(variables="full", max_bytes=16_000))
    assert over.variables_bytes == 20_004 and over.summarised == ["a", "b"]
    none = status_view(state(outputs), StatusRequest(variables="none"))
    assert none.outputs == {} and none.steps == []


def test_sizes_are_measured_once_and_forget_values_no_longer_shown() -> None:
    sizes = Sizes()
    value = ["x" * 100_000]
    assert sizes.of(value) == json_bytes(value)
    sizes.done()
    value.append("y")  # the same object: the size is not measured again
    assert sizes.of(value) == json_bytes(["x" * 100_000])
    sizes.done()
    sizes.done()  # not used in an answer: forgotten
    assert sizes.of(value) == json_bytes(value)


def test_origins() -> None:
    assert origin_of("http://127.0.0.1:80/x") == "http://127.0.0.1"
    assert origin_of("HTTPS://Example.COM:443") == "https://example.com"
    assert origin_of("http://[::1]:8000") == "http://[::1]:8000"
    assert origin_of("null") is None and origin_of("file:///x") is None


def refusal(headers: dict[str, str], method: str = "POST", path: str = "/api/workflows/run",
            public_url: str | None = None) -> str | None:  # fmt: skip
    scope = {
        "type": "http", "method": method, "path": path, "scheme": "http",
        "headers": [(k.lower().encode(), v.encode()) for k, v in {"Host": "api:8000", **headers}.items()],
    }  # fmt: skip
    found = CrossSiteGuard(None, public_url)._refusal(scope)
    return found[0] if found else None


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Origin": "http://api:8000"}, None),
        ({"Origin": "http://api:8000", "Sec-Fetch-Site": "same-origin"}, None),
        ({"Origin": "http://evil:8000"}, "cross_site_refused"),
        ({"Origin": "http://api:9000"}, "cross_site_refused"),
        ({"Origin": "null"}, "cross_site_refused"),
        ({"Sec-Fetch-Site": "same-site"}, "cross_site_refused"),
        ({"Sec-Fetch-Site": "none", "Content-Type": "text/plain"}, None),
        ({"Content-Type": "text/plain"}, "form_needs_key"),
        ({"Content-Type": "multipart/form-data; boundary=x"}, "form_needs_key"),
        ({"Content-Type": "application/x-www-form-urlencoded", "Authorization": "Bearer k"}, None),
        ({"Content-Type": "application/json"}, None),
        ({}, None),
    ],
)
def test_cross_site_rules(headers: dict[str, str], expected: str | None) -> None:
    assert refusal(headers) == expected


def test_safe_methods_webhooks_and_the_public_url() -> None:
    foreign = {"Origin": "http://evil"}
    assert refusal(foreign, method="GET") is None
    assert refusal({**foreign, "Content-Type": "text/plain"}, path="/api/hooks/x") is None
    public = {"Origin": "https://engine.example.com"}
    assert refusal(public) == "cross_site_refused"
    assert refusal(public, public_url="https://engine.example.com/") is None


def test_the_tightest_gap_of_a_schedule() -> None:
    def calendar(**fields: list[tuple[int, int, int]]) -> ScheduleCalendarSpec:
        ranges = {k: tuple(ScheduleRange(a, b, c) for a, b, c in v) for k, v in fields.items()}
        return ScheduleCalendarSpec(**ranges)  # type: ignore[arg-type]

    every_15 = calendar(second=[(0, 0, 1)], minute=[(0, 59, 15)], hour=[(0, 23, 1)])
    assert tightest_gap(ScheduleSpec(calendars=[every_15])) == 900
    twice = calendar(second=[(0, 0, 1), (30, 30, 1)], minute=[(0, 59, 1)], hour=[(0, 23, 1)])
    assert tightest_gap(ScheduleSpec(calendars=[twice])) == 30
    late = calendar(
        second=[(0, 0, 1)], minute=[(59, 59, 1), (0, 0, 1)], hour=[(23, 23, 1), (0, 0, 1)]
    )
    assert tightest_gap(ScheduleSpec(calendars=[late])) == 60  # 23:59 then 00:00
    daily = calendar(second=[(0, 0, 1)], minute=[(0, 0, 1)], hour=[(9, 9, 1)])
    assert tightest_gap(ScheduleSpec(calendars=[daily])) == 86_400
    interval = ScheduleIntervalSpec(every=timedelta(seconds=45))
    assert tightest_gap(ScheduleSpec(intervals=[interval])) == 45
    assert json.dumps(tightest_gap(ScheduleSpec())) == "null"
