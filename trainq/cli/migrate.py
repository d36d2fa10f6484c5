"""``trainq migrate``: bring records an earlier release wrote to this release's layout (see
``trainq.store.migration``); run once after a rolling deploy."""

from __future__ import annotations

import click

from trainq.cli.group import main
from trainq.store.migration import DEFAULT_BATCH, Migration
from trainq.store.registry import get_registry


@main.command()
@click.option("--dry-run", is_flag=True, help="Count what would change; write nothing.")
@click.option(
    "--batch", default=DEFAULT_BATCH, show_default=True, type=click.IntRange(1), help="Keys per batch."
)
def migrate(dry_run: bool, batch: int) -> None:
    """Rewrite job records and pipeline runs of earlier releases (resumable, safe to run twice)."""
    migration = Migration(get_registry(), dry_run=dry_run, batch=batch)
    migration.run()
    for what, count in sorted(migration.counts.items()):
        click.echo(f"{what}: {count}")
    click.echo("dry run: nothing written" if dry_run else "migration done")
