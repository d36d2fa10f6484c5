"""The picture of a pipeline run: a box per job, placed left to right by dependency depth, and an
arrow per dependency. Within a column, jobs sit near the jobs they depend on (the mean row of
their dependencies), which keeps most arrows short and level at hundreds of jobs.
"""

from __future__ import annotations

from dataclasses import dataclass

from trainq.pipelines.dag import Dag

BOX_W, BOX_H = 170, 46
GAP_X, GAP_Y = 60, 14
MARGIN = 16
#: Characters of a job id drawn in its box (the full id is its tooltip).
LABEL_CHARS = 22


@dataclass(frozen=True)
class Box:
    """One job's box: its top-left corner and the label drawn in it."""

    job: str
    x: int
    y: int
    label: str


@dataclass(frozen=True)
class Picture:
    """Every box and arrow (SVG path data) of a run, and the size that holds them."""

    boxes: list[Box]
    arrows: list[str]
    width: int
    height: int


def depths(graph: Dag) -> dict[str, int]:
    """Each job's column: 0 for a root, else one more than its deepest dependency."""
    depth: dict[str, int] = {}
    for job in graph.order():
        depth[job] = 1 + max((depth[d] for d in graph.deps[job]), default=-1)
    return depth


def layout(graph: Dag) -> Picture:
    """Place every job of ``graph`` (a cycle-free DAG) and route an arrow for each dependency."""
    depth = depths(graph)
    columns: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for job in graph.deps:  # file order first, so ties keep the file's order
        columns[depth[job]].append(job)
    row: dict[str, float] = {}
    for column in columns:
        wanted = {
            job: (sum(row[d] for d in graph.deps[job]) / len(graph.deps[job])) if graph.deps[job] else n
            for n, job in enumerate(column)
        }
        column.sort(key=wanted.__getitem__)
        for n, job in enumerate(column):
            row[job] = n
    place = {
        job: (MARGIN + depth[job] * (BOX_W + GAP_X), MARGIN + int(row[job]) * (BOX_H + GAP_Y))
        for job in depth
    }
    boxes = [Box(job, x, y, _label(job)) for job, (x, y) in place.items()]
    arrows = []
    for job, deps in graph.deps.items():
        x2, y2 = place[job][0], place[job][1] + BOX_H // 2
        for dep in deps:
            x1, y1 = place[dep][0] + BOX_W, place[dep][1] + BOX_H // 2
            bend = (x2 - x1) // 2
            arrows.append(f"M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2 - 6},{y2}")
    tallest = max((len(c) for c in columns), default=0)
    width = 2 * MARGIN + len(columns) * (BOX_W + GAP_X) - GAP_X
    height = 2 * MARGIN + tallest * (BOX_H + GAP_Y) - GAP_Y
    return Picture(boxes, arrows, max(width, BOX_W), max(height, BOX_H))


def _label(job: str) -> str:
    return job if len(job) <= LABEL_CHARS else job[: LABEL_CHARS - 1] + "…"
