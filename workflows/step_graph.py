"""The lists of steps of a definition and the control flow within each, for the whole-document
checks (workflows/validation.py, workflows/type_checks.py).

A jump that cannot be followed (an unknown target) or a step whose shape is invalid (kept as
an *opaque* step when the rest of the document is checked anyway) leads to the list's *hub*:
an extra node with an edge to every step of the list and to its end. So every check stays
sound where the flow is not known: no step is called unreachable, no loop is called endless,
and no name is called unbound because of a jump that could not be read, while the lists and
the parts of a list the problem does not touch are checked as usual.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from workflows.kinds import Step, kind_of
from workflows.kinds.base import Edge
from workflows.kinds.common import END
from workflows.value_types import ANY_NAME

Graph = list[list[tuple[int, bool]]]
"""Per node: (successor index, or -1 for the end of the list; on failure). The hub, when a
list has one, is the node after the last step."""


@dataclass(frozen=True)
class Opaque:
    """A step whose shape is invalid: its fields cannot be trusted, except the names it
    binds where they can be read (``None``: it may bind any name)."""

    binds: frozenset[str] | None


@dataclass
class StepList:
    """One list of steps: the top level or a scope a step holds (JSON path ``where``)."""

    where: str  # e.g. "$.steps" or "$.steps[2].branches[1].steps"
    steps: Sequence[Step]
    adds: frozenset[str] = frozenset()  # names the holding step binds for its steps
    opaque: Mapping[int, Opaque] = field(default_factory=dict)
    ids: dict[str, list[int]] = field(init=False)
    graph: Graph = field(init=False)

    def __post_init__(self) -> None:
        self.ids = {}
        for index, step in enumerate(self.steps):
            self.ids.setdefault(step.id, []).append(index)
        self.graph = _graph(self)

    def at(self, index: int) -> str:
        return f"{self.where}[{index}]"

    @property
    def hub(self) -> int | None:
        return len(self.steps) if len(self.graph) > len(self.steps) else None

    def binds(self, index: int) -> set[str]:
        """What the step at ``index`` (or the hub) binds when it succeeds."""
        if index >= len(self.steps):
            return set()
        opaque = self.opaque.get(index)
        if opaque is not None:
            return {ANY_NAME} if opaque.binds is None else set(opaque.binds)
        step = self.steps[index]
        return kind_of(step).binds(step)


def step_lists(steps: Sequence[Step], opaque: Mapping[str, Opaque]) -> list[StepList]:
    """Every list of steps, outermost first; ``opaque``: steps by their JSON path."""
    found: list[StepList] = []
    work: list[tuple[str, Sequence[Step], frozenset[str]]] = [("$.steps", steps, frozenset())]
    while work:
        where, listed, adds = work.pop(0)
        marked = {
            i: opaque[f"{where}[{i}]"] for i in range(len(listed)) if f"{where}[{i}]" in opaque
        }
        found.append(StepList(where, listed, adds, marked))
        for index, step in enumerate(listed):
            if index in marked:
                continue
            for scope in kind_of(step).scopes(step):
                work.append((f"{where}[{index}]{scope.path}", scope.steps, scope.adds))
    return found


def _graph(steps: StepList) -> Graph:
    count = len(steps.steps)
    graph: Graph = []
    needs_hub = False
    for index, step in enumerate(steps.steps):
        following = index + 1 if index + 1 < count else -1
        if index in steps.opaque:
            graph.append([(count, False), (count, True)])
            needs_hub = True
            continue
        edges: set[tuple[int, bool]] = set()
        for edge in kind_of(step).successors(step):
            for target in _targets(edge, steps.ids, following, count):
                edges.add((target, edge.on_failure))
                needs_hub = needs_hub or target == count
        graph.append(sorted(edges))
    if needs_hub:
        graph.append([(-1, False)] + [(index, False) for index in range(count)])
    return graph


def _targets(edge: Edge, ids: dict[str, list[int]], following: int, hub: int) -> list[int]:
    if edge.target is None:
        return [following]
    if edge.target == END:
        return [-1]
    return ids.get(edge.target, [hub])


def successors(steps: Sequence[Step]) -> Graph:
    """Control-flow edges of one list by step index; -1 stands for the end of the list."""
    return StepList("$", steps).graph
