"""The ``trainq`` click group, its exit codes and the error handling every subcommand shares.

Exit codes: 0 ok, 1 the work failed, 2 bad input, 3 broker or registry unreachable, 130 interrupted
(Ctrl-C in a command that waits or follows: what it watched goes on).
"""

from __future__ import annotations

import io
import sys
from typing import Any

import click
import redis
from amqp.exceptions import AMQPError
from kombu.exceptions import OperationalError

from trainq.cli.output import printable
from trainq.errors import BrokerUnavailable, InvalidInput, InvalidSetting, TrainqError
from trainq.ops import embedded
from trainq.settings import redacted
from trainq.store.registry import unreachable

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_UNREACHABLE = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it

#: What fails to reach the broker or the registry: RabbitMQ's client (py-amqp) raises some of its own
#: errors (a refused login) through kombu as they are, not as kombu's OperationalError.
UNREACHED = (BrokerUnavailable, redis.ConnectionError, redis.TimeoutError, OperationalError, AMQPError)


def exit_code(error: BaseException) -> int:
    """The exit code for ``error``: the one place errors map to codes."""
    if isinstance(error, UNREACHED):
        return EXIT_UNREACHABLE
    if isinstance(error, (InvalidInput, InvalidSetting)):
        return EXIT_BAD_INPUT
    return EXIT_FAILED


class TrainqGroup(click.Group):
    """A click group that turns trainq errors into one clear message and an exit code."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        """Run the CLI with output that cannot crash on its encoding: a name an ASCII (or other narrow)
        terminal cannot show is printed escaped (``\\xe9``), not a UnicodeEncodeError."""
        for stream in (sys.stdout, sys.stderr):
            if isinstance(stream, io.TextIOWrapper):
                stream.reconfigure(errors="backslashreplace")
        return super().main(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:  # not the work failing (exit 1): a watcher stopped, the work goes on
            click.echo("interrupted: what was submitted goes on (trainq cancel stops it)", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except (TrainqError, redis.RedisError, OperationalError, AMQPError) as error:
            message = str(error if isinstance(error, TrainqError) else unreachable(error))
            click.echo(f"error: {printable(redacted(message), lines=True)}", err=True)
            sys.exit(exit_code(error))
        finally:
            note_embedded()


def note_embedded() -> None:
    """Say where the embedded Redis this command started runs, and how to stop it: it outlives the
    command on purpose (a worker started later takes the jobs queued in it), so it should not go unseen."""
    for home in embedded.started_here():
        click.echo(
            f"note: started the embedded Redis in {home / 'redis'}; it keeps running for workers and later "
            "commands (`trainq down` stops it)",
            err=True,
        )


@click.group(
    cls=TrainqGroup, context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "TRAINQ"}
)
@click.version_option(package_name="trainq")
def main() -> None:
    """trainq: ML jobs on Celery workers (submit, watch, retry, pipelines, schedules)."""
