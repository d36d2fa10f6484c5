"""Serving trainq web: the address rule, the command line ``trainq up`` starts, and uvicorn."""

from __future__ import annotations

import logging
import sys

from trainq.errors import InvalidInput
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


def serve(settings: Settings, address: str, port: int) -> None:
    """Serve the app with uvicorn until stopped; raises InvalidInput for a public address without auth."""
    import uvicorn

    from trainq.web.app import create_app

    check_address(settings, address)
    if not 0 < port < 65536:
        raise InvalidInput(f"web port must be between 1 and 65535, got {port}")
    # The audit lines (trainq.web) go to stderr; uvicorn's per-request lines would be mostly page polls.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(
        create_app(settings), host=address, port=port, log_level="info", access_log=False, server_header=False
    )
