"""Runtime plumbing: what reads the environment, dials Temporal or touches the disk.

Settings (``settings``), the Temporal connection (``temporal_client``), the claim-check payload
codec and its store (``payload_store``), the storage interface with its file and S3 backends
that holds execution logs and large values (``storage``), logging and tracing set-up.
Workflow code never imports this package: the deterministic core (definitions, templating,
conditions, validation, the step kinds and the interpreter) stays importable without the
environment, the network or the disk, and ``make lint`` checks it (import-linter).
"""
