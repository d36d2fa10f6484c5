"""Rows of results, the targets they are held to, and the table/JSON/Markdown they are shown as."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

SYSTEMS = ("trainq", "celery", "rq", "dramatiq", "baseline")
#: How much worse a RabbitMQ ratio may be than the Redis one (#13's "done when").
RABBITMQ_SLACK = 0.2


@dataclass
class Row:
    """One measured figure for each system, with trainq's ratio to the reference and its target.

    ``target`` bounds the ratio; ``limit`` bounds trainq's own figure (bytes kept per job);
    ``issue`` names the issue that set them, so one issue's targets can be read off the table.
    """

    case: str
    broker: str
    metric: str
    values: Mapping[str, float | None]
    reference: str | None = None
    target: float | None = None
    higher_is_better: bool = False
    note: str = ""
    limit: float | None = None
    issue: int | None = None
    ratio: float | None = field(default=None)
    met: bool | None = field(default=None)

    def __post_init__(self) -> None:
        trainq, ref = self.values.get("trainq"), self.values.get(self.reference or "")
        self.ratio = trainq / ref if trainq is not None and ref else None
        bounds = [(self.ratio, self.target), (trainq, self.limit)]
        checks = [
            self._within(value, bound) for value, bound in bounds if value is not None and bound is not None
        ]
        self.met = all(checks) if checks else None

    def _within(self, value: float, bound: float) -> bool:
        return value >= bound if self.higher_is_better else value <= bound

    def target_text(self) -> str:
        """``<= 1.1 x celery``, ``>= 0.9 x celery`` or ``<= 1,000`` (blank without a target)."""
        sign = ">=" if self.higher_is_better else "<="
        parts = []
        if self.target is not None and self.reference:
            parts.append(f"{sign} {self.target:g} x {self.reference}")
        if self.limit is not None:
            parts.append(f"{sign} {self.limit:,g}")
        return " and ".join(parts) + (f" (#{self.issue})" if parts and self.issue else "")


def hold_rabbitmq_to_redis(rows: list[Row]) -> list[Row]:
    """Targets of RabbitMQ rows as #13 sets them: no worse than the Redis ratio of the same figure plus 0.2.

    Where the Redis ratio misses its target, the Redis target is the base instead, so a RabbitMQ
    row is met only when it is within 0.2 of a Redis figure that meets its target.
    """
    redis_ratios = {(r.case, r.metric): r.ratio for r in rows if r.broker == "redis"}
    held = []
    for row in rows:
        ratio = redis_ratios.get((row.case, row.metric))
        if row.broker == "rabbitmq" and row.target is not None and ratio is not None:
            better = max if row.higher_is_better else min
            slack = -RABBITMQ_SLACK if row.higher_is_better else RABBITMQ_SLACK
            base = better(ratio, row.target)
            rule = (
                f"RabbitMQ target = {base:.2f} {slack:+g} (the Redis ratio {ratio:.2f}, at most its target)"
            )
            row = replace(
                row, target=round(base + slack, 2), note=f"{row.note}; {rule}" if row.note else rule
            )
        held.append(row)
    return held


def summary(rows: list[Row]) -> str:
    """How many targets the rows meet, and which they miss."""
    judged = [r for r in rows if r.met is not None]
    counts = [f"targets met: {sum(bool(r.met) for r in judged)} of {len(judged)}"]
    for issue in sorted({r.issue for r in judged if r.issue}):
        own = [r for r in judged if r.issue == issue]
        counts.append(f"#{issue}'s: {sum(bool(r.met) for r in own)} of {len(own)}")
    missed = [
        f"{r.case} {r.broker} {r.metric}" + (f" (#{r.issue})" if r.issue else "") for r in judged if not r.met
    ]
    return "; ".join(counts) + (f"; missed: {', '.join(missed)}" if missed else "")


def notes(rows: list[Row]) -> list[str]:
    """One line per row that carries a note."""
    return [f"- {r.case} ({r.broker}), {r.metric}: {r.note}" for r in rows if r.note]


def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile (0-100) of ``values``, nearest rank."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
    return ordered[index]


def median(values: list[float]) -> float:
    """The median of ``values``."""
    return statistics.median(values)


def machine() -> dict[str, Any]:
    """Where and when the figures were taken, including the load other users put on the machine."""
    return {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "loadavg_start": list(os.getloadavg()),
    }


def _cell(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def markdown(rows: list[Row], meta: dict[str, Any]) -> str:
    """The results as a Markdown table (the README's Performance section)."""
    lines = [
        f"Measured {meta['when']} on {meta['cpus']} CPUs (load average at start "
        f"{meta['loadavg_start'][0]:.2f}, at end {meta.get('loadavg_end', [0])[0]:.2f}); "
        f"{meta.get('command', 'python -m bench')}.",
        "",
        "| case | broker | metric | trainq | raw Celery | RQ | Dramatiq | baseline | ratio | target | met |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        cells = [_cell(r.values.get(s)) for s in SYSTEMS]
        met = "" if r.met is None else ("yes" if r.met else "**no**")
        ratio = "" if r.ratio is None else f"{r.ratio:.2f}"
        row = [r.case, r.broker, r.metric, *cells, ratio, r.target_text(), met]
        lines.append(f"| {' | '.join(row)} |")
    return "\n".join([*lines, "", summary(rows), "", *notes(rows)]) + "\n"


def print_table(rows: list[Row]) -> None:
    """Print the results as one rich table."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="trainq benchmarks")
    for column in (
        "case",
        "broker",
        "metric",
        "trainq",
        "celery",
        "rq",
        "dramatiq",
        "baseline",
        "ratio",
        "target",
        "met",
    ):
        table.add_column(column)
    for r in rows:
        met = "" if r.met is None else ("[green]yes[/]" if r.met else "[red]no[/]")
        ratio = "" if r.ratio is None else f"{r.ratio:.2f}"
        table.add_row(
            r.case,
            r.broker,
            r.metric,
            *(_cell(r.values.get(s)) for s in SYSTEMS),
            ratio,
            r.target_text(),
            met,
        )
    console = Console(width=200)
    console.print(table)
    console.print(summary(rows), *notes(rows), sep="\n", soft_wrap=True, markup=False, highlight=False)


def write(rows: list[Row], meta: dict[str, Any], directory: Path) -> None:
    """Write ``results.json`` and ``results.md`` under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "results.json").write_text(
        json.dumps({"meta": meta, "rows": [asdict(r) for r in rows]}, indent=2)
    )
    (directory / "results.md").write_text(markdown(rows, meta))


def rows_from_json(data: list[dict[str, Any]]) -> list[Row]:
    """Rows sent back by a case process."""
    return [Row(**{k: v for k, v in item.items() if k not in ("ratio", "met")}) for item in data]
