"""The I/O side of the engine: the activities a worker runs (``ai``, ``http``, the execution
log), what guards them (SSRF, secrets) and, in :mod:`activities.runtime`, the plumbing the
worker and the API share (settings, the Temporal connection, storage). Workflow code never
imports this package (import-linter checks it)."""
