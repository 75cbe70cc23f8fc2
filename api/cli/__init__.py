"""`wfe`: the engine's command line.

wfe dev                       Temporal dev server (SQLite in storage/) + worker + API
wfe validate FILE             check a definition without saving it
wfe push DIR_OR_FILE          save definitions (a new version when a document changed)
wfe workflows                 list saved definitions
wfe run WORKFLOW_ID           start an execution (--wait follows its steps live, -q: id only)
wfe status EXECUTION_ID       status, current step, steps, outputs, error
wfe cancel EXECUTION_ID       cancel a running execution
wfe signal EXECUTION_ID NAME  deliver a signal (e.g. an approval)
wfe logs EXECUTION_ID         the execution log document
wfe list                      recent executions
wfe rerun EXECUTION_ID         run a finished execution again, reusing paid-for results

Every command but `dev` talks to the API at WFE_API_URL (default http://127.0.0.1:8000)
with the key in WFE_API_KEY, and reports failures as one `error:` line each on stderr.
"""

from __future__ import annotations

from api.cli import definitions, dev, executions, watch  # noqa: F401 - each registers its commands
from api.cli.app import app
from api.cli.dev import dev_allowed_hosts, dev_environment

__all__ = ["app", "dev_allowed_hosts", "dev_environment"]
