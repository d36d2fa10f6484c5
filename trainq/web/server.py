"""Serving trainq web: the address rule, the command line ``trainq up`` starts, and uvicorn."""

from __future__ import annotations

import logging
import socket
import sys

from trainq.errors import ConfigError, InvalidInput
from trainq.ops.sockets import listening
from trainq.settings import Settings
from trainq.web.auth import check_address


def web_url(address: str, port: int) -> str:
    """The URL a browser opens for a server on ``address``:``port``."""
    host = f"[{address}]" if ":" in address else address or "0.0.0.0"
    return f"http://{host}:{port}/"


def web_command(settings: Settings, address: str | None = None, port: int | None = None) -> list[str]:
    """``trainq web`` as a process command line (credentials stay in the environment)."""
    address = settings.web_address if address is None else address
    port = settings.web_port if port is None else port
    check_address(settings, address)
    return [sys.executable, "-m", "trainq", "web", f"--address={address}", f"--port={port}"]


def bind(settings: Settings, address: str, port: int) -> socket.socket:
    """The socket trainq web will serve on, bound before anything is announced. Raises InvalidInput for
    a public address without auth or a bad port, ConfigError naming an address that cannot be bound."""
    check_address(settings, address)
    if not 0 < port < 65536:
        raise InvalidInput(f"web port must be between 1 and 65535, got {port}")
    return listening("trainq web", address, port)


def serve(settings: Settings, sock: socket.socket) -> None:
    """Serve the app with uvicorn on ``sock`` (from ``bind``) until stopped."""
    import uvicorn

    from trainq.web.app import create_app

    # The audit lines (trainq.web) go to stderr; uvicorn's per-request lines would be mostly page polls.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = uvicorn.Config(create_app(settings), log_level="info", access_log=False, server_header=False)
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
    if not server.started:
        raise ConfigError("trainq web did not start; see the lines above")
