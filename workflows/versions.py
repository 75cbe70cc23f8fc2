"""Version markers, asked once per run where that is enough.

Every behaviour change a running workflow must not see sits behind a marker
(``workflow.patched``): a run whose history lacks it keeps the old behaviour. Asked one by one,
a new run records a marker (and the SDK a search-attribute upsert) for each change it meets:
six or more per run by now. A run that records the newest marker (:func:`settle`, asked first
as the run starts) started after every older marker existed, so it takes every behaviour they
guard without asking: one marker instead of all of them. A run without it (started before, or
replaying such a history) asks each marker as before, so every committed history replays.

Settling markers form a chain: when a newer one is added, runs that recorded an older one
(they started before the newer existed) still take everything the older one settled, and ask
each marker added since it one by one.
"""

from __future__ import annotations

from temporalio import workflow

# The attribute of the run's workflow instance that holds the verdict: one per run, whatever
# module copies the sandbox makes. Its value: the markers the run must still ask one by one
# (those newer than the settling marker it recorded), or None for a run that settled on none.
_SETTLED = "settled_on_newest_marker"


def settle(*newest_first: str) -> bool:
    """Ask the settling markers as the run starts, newest first (a new run records only the
    first); True for a run that recorded one of them."""
    for position, marker in enumerate(newest_first):
        if workflow.patched(marker):
            setattr(workflow.instance(), _SETTLED, frozenset(newest_first[:position]))
            return True
    setattr(workflow.instance(), _SETTLED, None)
    return False


def patched(marker: str) -> bool:
    """``workflow.patched(marker)``, answered True without a marker of its own in a run that
    settled on a marker newer than it."""
    still_asked: frozenset[str] | None = getattr(workflow.instance(), _SETTLED, None)
    if still_asked is not None and marker not in still_asked:
        return True
    return workflow.patched(marker)


def patched_since_settled(marker: str) -> bool:
    """``workflow.patched(marker)`` for a marker newer than every settling marker: a run
    settled on one of them may have started before this one, so every run asks it."""
    return workflow.patched(marker)
