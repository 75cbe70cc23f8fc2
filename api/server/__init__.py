"""The HTTP API (FastAPI): ``main.create_app`` builds it; ``routes/`` hold the thin routes,
one module per resource; the services beside them (``executions``, ``definitions``) do the
work, over Temporal (``temporalio.client``) and the definition store."""
