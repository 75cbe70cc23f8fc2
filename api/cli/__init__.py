"""`wfe`: the engine's command line.

wfe dev                       Temporal dev server (SQLite in storage/) + worker + API
wfe db upgrade                create or migrate the control plane's database (DATABASE_URL)
wfe validate FILE             check a definition without saving it
wfe push DIR [--dry-run] [--prune]  save a folder of definitions (all checked first)
wfe pull DIR                  write the latest version of every workflow
wfe diff ID V1 V2             what changed between two versions
wfe workflows                 list saved definitions
wfe run WORKFLOW_ID           start an execution (--wait follows its steps live, -q: id only)
wfe status EXECUTION_ID       status, current step, steps, outputs, error
wfe cancel EXECUTION_ID       cancel a running execution
wfe signal EXECUTION_ID NAME  deliver a signal (e.g. an approval)
wfe logs EXECUTION_ID         the execution log document
wfe list                      recent executions
wfe rerun EXECUTION_ID         run a finished execution again, reusing paid-for results
wfe test FILE... [--junit P]  run test files: mocked steps, virtual time (docs/testing.md)
wfe test --record EXEC_ID     write a test case from a finished run

Every command but `dev` talks to the API at WFE_API_URL (default http://127.0.0.1:8000)
with the key in WFE_API_KEY, and reports failures as one `error:` line each on stderr.
"""

from __future__ import annotations

from api.cli import (  # noqa: F401 - each registers its commands
    as_code,
    database,
    definitions,
    dev,
    executions,
    testing,
    watch,
)
from api.cli.app import app
from api.cli.dev import dev_allowed_hosts, dev_environment

__all__ = ["app", "dev_allowed_hosts", "dev_environment"]
