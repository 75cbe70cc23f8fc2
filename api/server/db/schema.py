"""The control plane's tables (SQLAlchemy Core). Alembic's migrations in ``migrations/`` create
and change them; this module is what the code reads and writes, and must match the newest
migration (tests/test_database.py compares them).

- ``workflows``: one row per workflow id ever saved; ``current_version`` is NULL once it was
  deleted, ``latest_version`` the highest version number given (numbers only grow).
- ``workflow_versions``: every saved version, never changed once written; the primary key
  ``(workflow_id, version)`` is what makes concurrent saves of one workflow get 1..N.
- ``triggers``: the current version's triggers, one row each, written in the same
  transaction as the version (so what fires always matches what is current).
- ``api_keys``: keys stored by their SHA-256 digest only, never the key itself.
- ``imports``: what was imported from the files layout of earlier versions, once.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

metadata = MetaData()

workflows = Table(
    "workflows",
    metadata,
    Column("workflow_id", String(64), primary_key=True),
    Column("current_version", Integer, nullable=True),
    Column("latest_version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

workflow_versions = Table(
    "workflow_versions",
    metadata,
    Column("workflow_id", String(64), ForeignKey("workflows.workflow_id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("hash", String(80), nullable=False),
    Column("saved_at", DateTime(timezone=True), nullable=False),
    Column("document", Text, nullable=False),
    PrimaryKeyConstraint("workflow_id", "version", name="pk_workflow_versions"),
)

triggers = Table(
    "triggers",
    metadata,
    Column("workflow_id", String(64), ForeignKey("workflows.workflow_id"), nullable=False),
    Column("trigger_id", String(100), nullable=False),
    Column("type", String(32), nullable=False),
    Column("version", Integer, nullable=False),
    Column("config", Text, nullable=False),
    PrimaryKeyConstraint("workflow_id", "trigger_id", name="pk_triggers"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("key_sha256", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("workflows", Text, nullable=True),  # a JSON list; NULL: every workflow
    Column("source", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

imports = Table(
    "imports",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("imported_at", DateTime(timezone=True), nullable=False),
    Column("summary", Text, nullable=False),
)
