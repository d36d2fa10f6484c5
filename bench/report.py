"""Rows of results, the targets they are held to, and the table/JSON/Markdown they are shown as."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SYSTEMS = ("trainq", "celery", "rq", "dramatiq", "baseline")


@dataclass
class Row:
    """One measured figure for each system, with trainq's ratio to the reference and its target."""

    case: str
    broker: str
    metric: str
    values: Mapping[str, float | None]
    reference: str | None = None
    target: float | None = None
    higher_is_better: bool = False
    note: str = ""
    ratio: float | None = field(default=None)
    met: bool | None = field(default=None)

    def __post_init__(self) -> None:
        trainq, ref = self.values.get("trainq"), self.values.get(self.reference or "")
        if trainq is not None and ref:
            self.ratio = trainq / ref
            if self.target is not None:
                self.met = self.ratio >= self.target if self.higher_is_better else self.ratio <= self.target

    def target_text(self) -> str:
        """``<= 1.1 x celery`` or ``>= 0.9 x celery`` (blank without a target)."""
        if self.target is None or self.reference is None:
            return ""
        return f"{'>=' if self.higher_is_better else '<='} {self.target:g} x {self.reference}"


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
    notes = [f"- {r.case} ({r.broker}), {r.metric}: {r.note}" for r in rows if r.note]
    return "\n".join(lines + (["", *notes] if notes else [])) + "\n"


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
    Console(width=200).print(table)


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
