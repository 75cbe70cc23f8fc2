"""How a large `foreach` list is cut into shares, and how its `concurrency` is split among them.

Pure arithmetic (no workflow calls), so every way a run may have cut its list stays here side
by side: a run keeps the way it started with (the markers in workflows/kinds/foreach.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Share:
    """One share: ``count`` items from position ``start``, ``concurrency`` of them at once."""

    start: int
    count: int
    concurrency: int


@dataclass(frozen=True)
class SharePlan:
    shares: list[Share]
    at_once: int  # shares running at once


def brim_full(items: int, concurrency: int, largest: int) -> SharePlan:
    """The first way: shares filled to ``largest``, ``concurrency // largest`` (often one) of
    them running at a time, each with the step's whole concurrency."""
    shares = [
        Share(start, min(largest, items - start), concurrency) for start in range(0, items, largest)
    ]
    return SharePlan(shares, max(1, concurrency // largest))


def balanced(items: int, concurrency: int, largest: int) -> SharePlan:
    """Equal shares, all at once (up to ``concurrency`` of them), the concurrency split evenly:
    ``concurrency // shares`` each, so a remainder went unused (50 over 20 shares: 40)."""
    count = math.ceil(items / largest)
    size = math.ceil(items / count)
    at_once = min(count, concurrency)
    each = max(1, concurrency // at_once)
    shares = [Share(start, min(size, items - start), each) for start in range(0, items, size)]
    return SharePlan(shares, at_once)


def filling(items: int, concurrency: int, largest: int) -> SharePlan:
    """Every unit of ``concurrency`` used: each share gets ``concurrency // shares`` or one
    more, and items in proportion to it, so the shares finish together; more shares are cut
    when the larger ones would exceed ``largest``. With more shares than the concurrency, each
    runs one item at a time and ``concurrency`` shares run at once."""
    count = math.ceil(items / largest)
    if count >= concurrency:
        return balanced(items, concurrency, largest)
    while math.ceil(items * math.ceil(concurrency / count) / concurrency) > largest:
        count += 1  # ends by count == concurrency: ceil(items / concurrency) <= largest
    shares: list[Share] = []
    given = 0
    for index in range(count):
        each = concurrency // count + (1 if index < concurrency % count else 0)
        start = items * given // concurrency
        given += each
        shares.append(Share(start, items * given // concurrency - start, each))
    return SharePlan(shares, count)


SHARE_CONCURRENCY = 25
"""The concurrency one share is given at least (where the step's allows): a share's workflow
takes a task for every batch of iterations that end together, so the wider the share, the
fewer tasks an item. 10,000 items at 50: every share at once with 2 took 0.53 workflow tasks
an item, shares of 10 take 0.36, of 25 0.21, of 50 0.10; the worker's CPU an item follows,
while one share of 50 at a time was slower end to end than two of 25 (one workflow's tasks run
one after another)."""


def in_waves(items: int, concurrency: int, largest: int) -> SharePlan:
    """Equal shares of at most ``largest``, ``ceil(concurrency / SHARE_CONCURRENCY)`` of them
    at once (fewer if there are fewer), the concurrency split among those: each share gets
    ``concurrency // at_once``, and the first ``concurrency % at_once`` one more, so however
    the shares start and end, no more than ``concurrency`` iterations run at once. The others
    wait for a place, like the iterations of an inline foreach."""
    count = math.ceil(items / largest)
    size = math.ceil(items / count)
    at_once = min(count, math.ceil(concurrency / SHARE_CONCURRENCY))
    each, more = divmod(concurrency, at_once)
    shares = [
        Share(start, min(size, items - start), each + (1 if index < more else 0))
        for index, start in enumerate(range(0, items, size))
    ]
    return SharePlan(shares, at_once)
