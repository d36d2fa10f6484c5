"""``trainq web``: the HTTP API and pages for pipelines, jobs, dead jobs and schedules."""

from __future__ import annotations

import click

from trainq.cli.group import main
from trainq.settings import get_settings
from trainq.store.registry import get_registry


@main.command()
@click.option("--address", help="Interface to bind (default 127.0.0.1; others need authentication).")
@click.option("--port", type=click.IntRange(1, 65535), help="Port (default 5580).")
def web(address: str | None, port: int | None) -> None:
    """Serve trainq's HTTP API (/api/v1, docs at /api/docs) and pages until stopped.

    Credentials come only from the environment: TRAINQ_WEB_BASIC_AUTH=user:password[,...] and/or
    TRAINQ_WEB_TOKEN (Authorization: Bearer).
    """
    from trainq.web.server import bind, serve, web_url

    settings = get_settings()
    address = settings.web_address if address is None else address
    port = settings.web_port if port is None else port
    sock = bind(settings, address, port)
    get_registry().ping()
    click.echo(f"trainq web on {web_url(address, port)}", err=True)
    serve(settings, sock)
