"""How the CLI prints: rich tables and bars for people, ``--json`` for programs."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from trainq.inputs.durations import format_duration
from trainq.job.record import JobRecord, JobState, eta_s

#: Columns of tables printed to a pipe or file instead of a terminal (not 80 squeezed ones).
PIPE_WIDTH = 160
console = Console(highlight=False)
if not console.is_terminal:
    console = Console(highlight=False, width=PIPE_WIDTH)
F = TypeVar("F", bound=Callable[..., Any])

STATE_STYLE = {
    JobState.SUCCEEDED: "green",
    JobState.RUNNING: "cyan",
    JobState.QUEUED: "white",
    JobState.DELAYED: "white",
    JobState.RETRYING: "yellow",
    JobState.FAILED: "red",
    JobState.DEAD: "bold red",
    JobState.CANCELLED: "magenta",
    JobState.BLOCKED: "yellow",
}


def json_option(command: F) -> F:
    """The shared ``--json`` flag of every read command."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(command)


def print_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout."""
    click.echo(json.dumps(data, indent=2, default=str))


def printable(value: object, lines: bool = False) -> str:
    """``value`` as text that cannot drive a terminal: every character ``str.isprintable`` refuses (C0
    and C1 controls, so each ESC of a CSI, OSC or DCS sequence, BEL, DEL, bidi overrides) is escaped
    (``\\x1b``) and so printed as stored. Job output, errors and names a release that did not refuse them
    stored are untrusted: OSC 52 would write the clipboard, OSC 8 plant a link. ``lines`` keeps newlines
    and tabs, the layout of a log or a traceback.
    """
    text = str(value)
    if text.isprintable():
        return text
    kept = "\n\t" if lines else ""
    return "".join(c if c.isprintable() or c in kept else repr(c)[1:-1] for c in text)


def cut(text: str, max_chars: int, whole: str) -> str:
    """``text``, or its first ``max_chars`` characters and a note of how many more ``whole`` shows."""
    if len(text) <= max_chars:
        return text
    return f"{text[:max_chars]}... ({len(text) - max_chars:,} more characters: {whole})"


def plain(value: object, lines: bool = False) -> str:
    """``printable(value, lines)`` with rich's markup escaped too, so ``[red]`` prints as typed."""
    return escape(printable(value, lines))


def when(ts: float | None) -> str:
    """A local time of day for a timestamp (blank for None)."""
    return time.strftime("%m-%d %H:%M:%S", time.localtime(ts)) if ts else ""


def due(record: JobRecord) -> str:
    """When a delayed job is due, ``12-02 05:31:52 (in 1h 23m)``, so a unit mistake shows; blank for
    a job that is not delayed."""
    if record.state is not JobState.DELAYED or record.eta is None:
        return ""
    return f"{when(record.eta)} (in {format_duration(max(0.0, record.eta - time.time()))})"


def state_text(state: JobState) -> str:
    """``state`` coloured for the terminal."""
    return f"[{STATE_STYLE[state]}]{state.value}[/]"


def progress_bar(record: JobRecord, width: int = 20) -> str:
    """A text progress bar with percent, step, metrics and ETA."""
    progress = record.progress
    if progress is None:
        return ""
    filled = int(width * progress.percent / 100)
    # '=' rather than '#': rich would read "[#...]" as a colour tag and drop the bar.
    text = f"[{'=' * filled}{'.' * (width - filled)}] {progress.percent:5.1f}%"
    if progress.total:
        text += f" {progress.step:g}/{progress.total:g}"
    if progress.metrics:
        text += " " + metrics_text(progress.metrics)
    eta = eta_s(record)
    if eta is not None:
        text += f" eta {format_duration(eta)}"
    return text


def metrics_text(metrics: dict[str, Any]) -> str:
    """Progress metrics as ``loss=0.2871 acc=0.91``."""
    return " ".join(f"{k}={_short(v)}" for k, v in metrics.items())


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def jobs_table(records: Iterable[JobRecord], title: str | None = None) -> Table:
    """A table of jobs: id, name, type, queue, state, attempt, progress, times."""
    table = Table(title=title)
    for column in ("id", "name", "type", "queue", "state", "pri", "att", "progress", "created", "took"):
        table.add_column(column)
    for r in records:
        took = format_duration(r.duration_s) if r.duration_s is not None else ""
        table.add_row(
            plain(r.id),
            plain(r.name),
            plain(r.type),
            plain(r.queue),
            state_text(r.state),
            str(r.priority),
            str(r.attempt),
            plain(progress_bar(r, 10)),
            when(r.created_at),
            took,
        )
    return table
