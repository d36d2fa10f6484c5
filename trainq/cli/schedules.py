"""Schedule commands: ``trainq schedule create|list|enable|disable|delete|run``."""

from __future__ import annotations

import click
from rich.table import Table
from rich.text import Text

from trainq import schedules
from trainq.cli.group import main
from trainq.cli.jobs import parse_config
from trainq.cli.output import console, json_option, plain, print_json, when


@main.group()
def schedule() -> None:
    """Cron and interval schedules, run by Celery Beat (celery -A trainq beat)."""


@schedule.command()
@click.argument("name")
@click.option("--cron", help="Cron expression, e.g. '0 2 * * *' (5 fields, or @hourly/@daily).")
@click.option("--every", help="Interval, e.g. 10m or 1h 30m.")
@click.option("--type", "job_type", help="Job type each run submits.")
@click.option("--config", "config_text", help="Payload of each job as JSON, or @file.json.")
@click.option("--pipeline", type=click.Path(dir_okay=False), help="Pipeline file each run starts.")
@click.option("--priority", type=click.IntRange(0, 9), help="0-9, 9 most urgent.")
@click.option("--timezone", help="IANA zone the cron expression is read in (default UTC).")
@click.option("--disabled", is_flag=True, help="Store it disabled; `schedule enable` starts it.")
@click.option(
    "--overlap",
    type=click.Choice([o.value for o in schedules.Overlap]),
    default=schedules.Overlap.ALLOW.value,
    show_default=True,
    help="skip: skip a due run while the previous run is queued, running or retrying.",
)
def create(
    name: str,
    cron: str | None,
    every: str | None,
    job_type: str | None,
    config_text: str | None,
    pipeline: str | None,
    priority: int | None,
    timezone: str | None,
    disabled: bool,
    overlap: str,
) -> None:
    """Create schedule NAME: (--cron | --every) and (--type [--config] | --pipeline)."""
    spec = schedules.ScheduleSpec(
        cron=cron,
        every=every,
        type=job_type,
        config=parse_config(config_text),
        pipeline=pipeline,
        priority=priority,
        timezone=timezone,
        enabled=not disabled,
        overlap=schedules.Overlap(overlap),
    )
    entry = schedules.create(name, spec)
    described = schedules.info(entry)
    click.echo(f"schedule {name} created: {described.when}, next run {when(described.next_run_at) or '-'}")


@schedule.command("list")
@json_option
def list_schedules(as_json: bool) -> None:
    """List schedules with their rule, target, last run (and last failed or skipped one) and next run."""
    described = [schedules.info(entry) for entry in schedules.entries()]
    if as_json:
        print_json([d.model_dump(mode="json") for d in described])
        return
    table = Table(title="schedules")
    for column in ("name", "when", "submits", "pri", "enabled", "last run", "next run"):
        table.add_column(column)
    for d in described:
        target = f"pipeline {d.pipeline}" if d.pipeline else f"{d.type} {_short_config(d.config)}"
        last = Text(f"{when(d.last_run_at)} {d.last_run_id}" if d.last_run_at else "")
        if d.last_error_at:  # plain Text: an error's "[...]" is not rich markup
            last.append("\n" if last else "")
            last.append(f"failed {when(d.last_error_at)}: {d.last_error}", style="red")
        if d.skipped:
            last.append("\n" if last else "")
            skipped_at, going = when(d.last_skipped_at), d.last_skipped_for
            last.append(f"skipped {d.skipped} (last {skipped_at}: {going} still going)")
        rule = d.when if d.overlap is schedules.Overlap.ALLOW else f"{d.when}\noverlap: {d.overlap.value}"
        enabled = ("yes" if d.enabled else "[yellow]no[/]") + (" (static)" if d.static else "")
        pri = "" if d.priority is None else str(d.priority)
        table.add_row(d.name, rule, plain(target), pri, enabled, last, when(d.next_run_at))
    console.print(table)


def _short_config(config: dict[str, object], width: int = 40) -> str:
    text = " ".join(f"{k}={v}" for k, v in config.items())
    return text if len(text) <= width else text[: width - 1] + "…"


@schedule.command()
@click.argument("name")
def enable(name: str) -> None:
    """Enable schedule NAME; it next runs at its next time from now (unchanged if already enabled)."""
    _set_enabled(name, True)


@schedule.command()
@click.argument("name")
def disable(name: str) -> None:
    """Disable schedule NAME: Beat submits nothing for it until it is enabled."""
    _set_enabled(name, False)


def _set_enabled(name: str, enabled: bool) -> None:
    """Enable or disable NAME, saying whether it already was."""
    already = "" if schedules.set_enabled(name, enabled) else "already "
    click.echo(f"schedule {name} {already}{'enabled' if enabled else 'disabled'}")


@schedule.command()
@click.argument("name")
def delete(name: str) -> None:
    """Delete schedule NAME (a static one returns when Beat restarts)."""
    schedules.delete(name)
    click.echo(f"schedule {name} deleted")


@schedule.command()
@click.argument("name")
def run(name: str) -> None:
    """Submit one run of schedule NAME now; print the job (or pipeline run) id."""
    click.echo(schedules.run_now(name))
