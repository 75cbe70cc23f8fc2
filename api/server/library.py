"""The definitions a run may call as sub-workflows, loaded when it starts.

Workflow code reads no store: every workflow a run's `sub_workflow` steps name (and theirs, in
turn) goes into its input at the version current now, or at the version a step pins. A parent
is therefore pinned as its children are, and a definition saved while it runs changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

from api.server.auth import Principal
from api.server.errors import ApiError, DefinitionNotFound
from api.server.store import DefinitionStore
from workflows.definition import WorkflowDefinition
from workflows.errors import DefinitionError
from workflows.kinds.base import called_workflows
from workflows.messages import library_key
from workflows.shared import LibraryEntry

MAX_LIBRARY = 100  # distinct workflows (and versions) one run may call


async def library_for(
    definition: WorkflowDefinition, store: DefinitionStore
) -> dict[str, LibraryEntry]:
    """Every definition ``definition`` may call, directly or through its children."""
    library: dict[str, LibraryEntry] = {}
    work = [definition]
    while work:
        caller = work.pop()
        for workflow_id, version in called_workflows(caller.steps):
            key = library_key(workflow_id, version)
            if key in library:
                continue
            pinned = f" version {version}" if version else ""
            try:
                # A deleted workflow runs on no path: its pinned versions stay readable for
                # the runs already pinned to them, never for new ones.
                stored = await store.get(workflow_id)
                if version is not None:
                    stored = await store.get(workflow_id, version)
            except (DefinitionNotFound, DefinitionError):
                raise ApiError(
                    422,
                    "sub_workflow_not_found",
                    f"workflow '{caller.key}' calls workflow '{workflow_id}'{pinned}, which is "
                    "not saved (or not valid); save it first",
                ) from None
            library[key] = LibraryEntry(version=stored.version, definition=stored.definition)
            if len(library) > MAX_LIBRARY:
                raise ApiError(
                    422,
                    "too_many_sub_workflows",
                    f"workflow '{definition.key}' calls more than {MAX_LIBRARY} workflows "
                    "(directly or through its sub-workflows)",
                )
            work.append(stored.definition)
    return library


def require_scope(principal: Principal, library: Mapping[str, LibraryEntry]) -> None:
    """A key starts a run only if it may see every workflow the run calls: its scope covers
    the sub-workflows and agent workflow tools it reaches, not just the one it names."""
    called = {entry.definition.key for entry in library.values()}
    hidden = sorted(key for key in called if not principal.sees(key))
    if hidden:
        raise ApiError(
            403,
            "workflow_out_of_scope",
            f"this run calls workflow {', '.join(repr(h) for h in hidden)}, which key "
            f"'{principal.name}' may not run; add {'it' if len(hidden) == 1 else 'them'} to the "
            "key's workflows",
        )


async def called_ids(definition: WorkflowDefinition, store: DefinitionStore) -> frozenset[str]:
    """Every workflow a run of ``definition`` may call (for a trigger acting with the
    authority of the definition's author, who was allowed to call them when saving)."""
    library = await library_for(definition, store)
    return frozenset(entry.definition.key for entry in library.values())
