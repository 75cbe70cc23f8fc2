"""`wfe test`: run test files against saved workflows, or record a case from a finished run.

Exit status: 0 when every case passed, 1 when a case failed (or the API could not be
reached), 2 when a file was refused (its schema, a mock naming no step, a mock result of the
wrong shape: each problem with its JSON path).
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.text import Text

from api.cli.app import ApiKey, ApiUrl, app, error, warning
from api.cli.client import DEFAULT_API_URL, ApiClient, ApiFailure, ClientError, problem_line
from api.cli.output import read_document, reporting, stdout, url_path

# Cases run concurrently on the server; a long file may take a while in real time.
TEST_TIMEOUT = httpx.Timeout(600.0, connect=5.0)
REFUSED = 2


def _client(api_url: str, api_key: str | None) -> ApiClient:
    return ApiClient(
        api_url, api_key, timeout=TEST_TIMEOUT, warn=lambda item: warning(problem_line(item))
    )


@app.command()
def test(
    files: Annotated[
        list[Path] | None, typer.Argument(help="Test files (JSON, docs/testing.md).")
    ] = None,
    junit: Annotated[
        Path | None, typer.Option("--junit", help="Also write the results as JUnit XML here.")
    ] = None,
    record: Annotated[
        str | None,
        typer.Option("--record", help="Write a test file with one case from this finished run."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="With --record: write it here.")
    ] = None,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Run the cases of test files (mocked steps, virtual time); exit 1 if a case fails."""
    if record is not None:
        _record(record, output, api_url, api_key)
        return
    if not files:
        error("give test files to run, or --record EXECUTION_ID")
        raise typer.Exit(REFUSED)
    out = stdout()
    suites: list[dict[str, Any]] = []
    refused = 0
    with reporting(), _client(api_url, api_key) as api:
        for path in files:
            report = _run_file(api, out, path)
            if report is None:
                refused += 1
            else:
                suites.append(report)
    passed = sum(s["passed"] for s in suites)
    failed = sum(s["failed"] for s in suites)
    out.print(f"{passed} passed, {failed} failed" + (f", {refused} refused" if refused else ""))
    if junit is not None:
        junit.write_text(junit_xml(suites), encoding="utf-8")
    if refused:
        raise typer.Exit(REFUSED)
    if failed:
        raise typer.Exit(1)


def _run_file(api: ApiClient, out: Console, path: Path) -> dict[str, Any] | None:
    """Run one file and print its cases; None when it was refused (its problems printed)."""
    try:
        raw, document = read_document(path)
    except ClientError as err:
        error(str(err))
        return None
    workflow_id = document.get("workflow_id") if isinstance(document, dict) else None
    if not isinstance(workflow_id, str | int) or isinstance(workflow_id, bool):
        error(f"{path}: $.workflow_id: the file names no workflow to test")
        return None
    try:
        report = api.post_raw(f"/api/workflows/{url_path(str(workflow_id))}/test", raw)
    except ApiFailure as err:
        if err.status in (401, 403) or err.status >= 500:
            raise
        for problem in err.problems() if err.status == 422 else err.lines():
            error(f"{path}: {problem}")
        return None
    for case in report["cases"]:
        mark = ("PASS", "green") if case["status"] == "passed" else ("FAIL", "bold red")
        line = Text.assemble(mark, " ", f"{workflow_id}: {case['name']}")
        line.append(f"  ({case['seconds']:.2f} s, {case.get('execution_id')})", style="dim")
        out.print(line, soft_wrap=True)
        for problem in case["problems"]:
            out.print(f"     {problem}", soft_wrap=True, markup=False, highlight=False)
    return {**report, "workflow_id": str(workflow_id), "file": str(path)}


def junit_xml(suites: list[dict[str, Any]]) -> str:
    """The results as JUnit XML (one testsuite a file, one testcase a case)."""
    root = ET.Element("testsuites")
    for suite in suites:
        cases = suite["cases"]
        element = ET.SubElement(
            root,
            "testsuite",
            name=suite["workflow_id"],
            file=suite["file"],
            tests=str(len(cases)),
            failures=str(suite["failed"]),
            errors="0",
            time=f"{sum(c['seconds'] for c in cases):.3f}",
        )
        for case in cases:
            node = ET.SubElement(
                element,
                "testcase",
                classname=suite["workflow_id"],
                name=case["name"],
                time=f"{case['seconds']:.3f}",
            )
            if case["status"] != "passed":
                failure = ET.SubElement(node, "failure", message=case["problems"][0])
                failure.text = "\n".join(case["problems"])
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _record(execution_id: str, output: Path | None, api_url: str, api_key: str | None) -> None:
    with reporting(), _client(api_url, api_key) as api:
        document = api.get(f"/api/executions/{url_path(execution_id)}/test-case")
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if output is None:
        sys.stdout.write(text)  # the JSON as is: for a pipe or a redirect
        return
    output.write_text(text, encoding="utf-8")
    stdout().print(f"wrote {output} (1 case from {execution_id})")
