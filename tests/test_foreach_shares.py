"""How a large foreach is cut into shares: every unit of its concurrency used, no share larger
than its history allows, items in proportion to each share's part."""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

import pytest

from workflows.kinds.foreach_shares import (
    SHARE_CONCURRENCY,
    Share,
    SharePlan,
    balanced,
    filling,
    in_waves,
)


def running_at_once(plan_shares: list[Share], at_once: int) -> int:
    return sum(share.concurrency for share in plan_shares[:at_once])


@pytest.mark.parametrize(
    ("items", "concurrency", "largest"),
    [
        (10_000, 50, 500),
        (40, 4, 16),
        (2_000, 1_000, 500),
        (1_000, 997, 500),
        (600, 7, 500),
        (10_000, 1_000, 500),
        (10_000, 10, 500),
        (17, 3, 5),
        (9_999, 64, 333),
    ],
)
@pytest.mark.parametrize("cut", [filling, in_waves])
def test_shares_cover_the_list_in_order_within_the_largest_size(
    items: int, concurrency: int, largest: int, cut: Callable[[int, int, int], SharePlan]
) -> None:
    plan = cut(items, concurrency, largest)
    starts = [share.start for share in plan.shares]
    assert starts[0] == 0
    assert all(a.start + a.count == b.start for a, b in pairwise(plan.shares))
    assert plan.shares[-1].start + plan.shares[-1].count == items
    assert max(share.count for share in plan.shares) <= largest
    assert all(share.count > 0 and share.concurrency >= 1 for share in plan.shares)
    # Every unit of concurrency in use at the start (one item a share when shares outnumber it).
    assert running_at_once(plan.shares, plan.at_once) == concurrency


def test_ten_thousand_items_at_fifty_run_fifty_at_once_not_forty() -> None:
    old = balanced(10_000, 50, 500)
    assert (len(old.shares), old.at_once, old.shares[0].concurrency) == (20, 20, 2)
    assert running_at_once(old.shares, old.at_once) == 40
    plan = filling(10_000, 50, 500)
    assert (len(plan.shares), plan.at_once) == (25, 25)
    assert {(share.count, share.concurrency) for share in plan.shares} == {(400, 2)}


def test_an_uneven_split_gives_the_larger_part_more_items_so_shares_finish_together() -> None:
    plan = filling(600, 7, 500)
    assert [(s.start, s.count, s.concurrency) for s in plan.shares] == [(0, 342, 4), (342, 258, 3)]
    # Items per unit of concurrency are within one of each other.
    per_unit = [share.count / share.concurrency for share in plan.shares]
    assert max(per_unit) - min(per_unit) < 1


def test_where_concurrency_divides_evenly_nothing_changes() -> None:
    assert filling(2_000, 1_000, 500) == balanced(2_000, 1_000, 500)
    assert filling(10_000, 10, 500) == balanced(10_000, 10, 500)


@pytest.mark.parametrize(
    ("items", "concurrency", "largest"),
    [(10_000, 50, 500), (9_999, 64, 333), (1_000, 997, 500), (17, 3, 5), (600, 7, 500)],
)
def test_shares_in_waves_never_run_more_than_the_concurrency(
    items: int, concurrency: int, largest: int
) -> None:
    plan = in_waves(items, concurrency, largest)
    # Whichever shares happen to run together, the largest parts together are the whole.
    largest_parts = sorted((share.concurrency for share in plan.shares), reverse=True)
    assert sum(largest_parts[: plan.at_once]) == concurrency
    assert min(share.concurrency for share in plan.shares) >= min(
        SHARE_CONCURRENCY, concurrency // plan.at_once
    )
    sizes = {share.count for share in plan.shares[:-1]}
    assert len(sizes) == 1  # equal shares (the last one may be smaller)


def test_ten_thousand_items_at_fifty_run_in_two_shares_of_twenty_five_at_a_time() -> None:
    plan = in_waves(10_000, 50, 500)
    assert (len(plan.shares), plan.at_once) == (20, 2)
    assert {(share.count, share.concurrency) for share in plan.shares} == {(500, 25)}
    # Ten at once: one share at a time, with all ten.
    assert {(s.count, s.concurrency) for s in in_waves(10_000, 10, 500).shares} == {(500, 10)}
    # A small concurrency runs its shares one after another, each with all of it.
    plan = in_waves(40, 4, 16)
    assert plan.at_once == 1
    assert [(s.start, s.count, s.concurrency) for s in plan.shares] == [
        (0, 14, 4),
        (14, 14, 4),
        (28, 12, 4),
    ]
    # Where the concurrency is large, every share still runs at once.
    assert in_waves(2_000, 1_000, 500) == filling(2_000, 1_000, 500)
