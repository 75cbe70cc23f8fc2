"""Version markers, asked once per run where that is enough.

Every behaviour change a running workflow must not see sits behind a marker
(``workflow.patched``): a run whose history lacks it keeps the old behaviour. Asked one by one,
a new run records a marker (and the SDK a search-attribute upsert) for each change it meets:
six or more per run by now. A run that records the newest marker (:func:`settle`, asked first
as the run starts) started after every older marker existed, so it takes every behaviour they
guard without asking: one marker instead of all of them. A run without it (started before, or
replaying such a history) asks each marker as before, so every committed history replays.
"""

from __future__ import annotations

from temporalio import workflow

# The attribute of the run's workflow instance that holds the verdict: one per run, whatever
# module copies the sandbox makes.
_SETTLED = "settled_on_newest_marker"


def settle(newest: str) -> bool:
    """Ask the newest marker as the run starts; True for a run that recorded it."""
    recorded = workflow.patched(newest)
    setattr(workflow.instance(), _SETTLED, recorded)
    return recorded


def patched(marker: str) -> bool:
    """``workflow.patched(marker)``, answered True without a marker of its own in a run that
    settled on the newest one."""
    return bool(getattr(workflow.instance(), _SETTLED, False)) or workflow.patched(marker)


def patched_since_settled(marker: str) -> bool:
    """``workflow.patched(marker)`` for a marker newer than the one :func:`settle` asks: a run
    settled on that one may have started before this one, so every run asks it."""
    return workflow.patched(marker)
