"""Flower, trainq's dashboard: the command line and environment that start it safely.

Flower on its own binds every interface with no login and forgets its task history on
restart. ``trainq flower`` binds 127.0.0.1 unless told otherwise, refuses any other address
without authentication, keeps history in ``<home>/flower.db``, and lists each job's name
(``args``) and redacted payload (``kwargs``) beside its type and id.

Wherever Flower is loaded (Flower's process however it was started, and any ``celery``
command, Flower being one of its plugins), this module, in the app's include list, runs
``adapt_flower``: Flower becomes a full trainq client, reading queue lengths through the broker
like ``trainq stats`` and answering a refused job with its reason.
"""

from __future__ import annotations

import asyncio
import ipaddress
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from trainq.errors import InvalidInput
from trainq.settings import Settings

#: Columns of Flower's task list: the job type (task name), job id (uuid), name (args) and payload.
TASK_COLUMNS = "name,uuid,state,args,kwargs,received,started,runtime,worker"
#: How often Flower saves its history besides at shutdown, so a crash loses at most this much.
STATE_SAVE_INTERVAL_MS = 30_000
#: Flower's own options that turn authentication on.
AUTH_OPTIONS = ("--basic-auth", "--basic_auth", "--auth", "--auth-provider", "--auth_provider")


@dataclass(frozen=True)
class FlowerLaunch:
    """How to start Flower: the process arguments and extra environment (credentials stay out of ``ps``)."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    url: str = ""
    address: str = ""
    port: int = 0


def is_loopback(address: str) -> bool:
    """True for an address only this machine can reach (``127.0.0.1``, ``::1``, ``localhost``)."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def check_basic_auth(value: str, what: str = "Flower basic auth") -> str:
    """``value`` if it is comma-separated ``user:password`` pairs; raises InvalidInput naming ``what``
    and the bad pair (its password hidden)."""
    for pair in value.split(","):
        user, sep, password = pair.partition(":")
        if not sep or not user or not password:
            shown = f"{user}:***" if sep else "(no colon)"
            raise InvalidInput(f"bad {what} entry {shown!r}: use user:password, comma-separated")
    return value


def flower_launch(
    settings: Settings,
    address: str | None = None,
    port: int | None = None,
    basic_auth: str | None = None,
    extra: Sequence[str] = (),
) -> FlowerLaunch:
    """The Flower launch for the trainq app; raises InvalidInput for a public address with no auth."""
    address = settings.flower_address if address is None else address
    port = settings.flower_port if port is None else port
    auth = basic_auth or settings.flower_basic_auth
    own_auth = any(arg.split("=", 1)[0] in AUTH_OPTIONS for arg in extra)
    if not auth and not own_auth and not is_loopback(address):
        raise InvalidInput(
            f"refusing to serve Flower on {address or 'every interface'} without authentication: "
            "set TRAINQ_FLOWER_BASIC_AUTH=user:password (or --basic-auth), or pass Flower's --auth options"
        )
    if not 0 < port < 65536:
        raise InvalidInput(f"Flower port must be between 1 and 65535, got {port}")
    settings.home.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "trainq",
        "flower",
        f"--address={address}",
        f"--port={port}",
        "--persistent=True",
        f"--db={settings.home / 'flower.db'}",
        f"--state_save_interval={STATE_SAVE_INTERVAL_MS}",
        f"--tasks_columns={TASK_COLUMNS}",
        *extra,
    ]
    env = {"FLOWER_BASIC_AUTH": check_basic_auth(auth)} if auth else {}
    host = f"[{address}]" if ":" in address else address or "0.0.0.0"
    return FlowerLaunch(argv, env, f"http://{host}:{port}/", address, port)


class QueueLengths:
    """Flower's broker client, answered by trainq: the messages waiting in every job type's queue.

    Flower's own clients know plain ``redis://`` URLs (trainq's broker URL names its transport,
    ``trainq.broker.transport:Transport://``) and RabbitMQ's management plugin; kombu asks any broker.
    Flower names only the queues of the workers it has inspected; trainq adds every job type's
    queue and the queues its workers were started for.
    """

    async def queues(self, names: list[str]) -> list[dict[str, Any]]:
        depths = await asyncio.to_thread(self._depths, names)
        # every waiting message is ready: a delivered, unacknowledged one has left the count
        return [{"name": q, "messages": depths[q], "messages_ready": depths[q]} for q in sorted(depths)]

    @staticmethod
    def _depths(names: list[str]) -> dict[str, int]:
        from trainq.ops.control import queue_depths
        from trainq.ops.stack import stack_queues
        from trainq.store.registry import get_registry

        started = get_registry().worker_queues().values()
        return queue_depths({*names, *stack_queues(), *(q for queues in started for q in queues)})


def adapt_flower() -> None:
    """Make the Flower of this process read queue lengths through trainq and explain refused jobs.

    Flower answers an exception of ``apply_async`` (a payload that fails validation) with an
    empty HTTP 500; a trainq ``InvalidInput`` becomes HTTP 400 with its message instead.
    """
    from flower.utils.blocking import BlockingOperationRunner
    from flower.views import BaseHandler
    from kombu import connection
    from tornado.web import HTTPError

    from trainq.broker.transport import SENTINEL_TRANSPORT, TRANSPORT

    BaseHandler.get_broker = lambda handler: QueueLengths()
    # Flower shows the broker URL; show trainq's transports by their schemes, as the user wrote them.
    connection.resolve_aliases.setdefault(TRANSPORT, "redis")
    connection.resolve_aliases.setdefault(SENTINEL_TRANSPORT, "sentinel")
    run = BlockingOperationRunner.run

    async def run_explained(runner: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await run(runner, *args, **kwargs)
        except HTTPError as error:
            if isinstance(error.__cause__, InvalidInput):
                raise HTTPError(400, "%s", error.__cause__) from error.__cause__
            raise

    BlockingOperationRunner.run = run_explained


if "flower.app" in sys.modules:  # Flower is loaded; a plain Python client never loads it
    adapt_flower()
