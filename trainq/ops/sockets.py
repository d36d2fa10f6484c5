"""Listening sockets of trainq's servers (web, Flower): bound before a server starts, so an address in
use is one line naming it (a ConfigError, exit 1: the environment's problem), not a server's traceback."""

from __future__ import annotations

import socket

from trainq.errors import ConfigError


def listening(what: str, address: str, port: int, hint: str = "") -> socket.socket:
    """A TCP socket bound to ``address``:``port`` for the server ``what``, bound as uvicorn binds (reused
    at once after a restart); raises ConfigError naming the address, and ``hint`` (how to choose
    another), when it cannot be bound."""
    sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((address, port))
    except OSError as exc:
        sock.close()
        reason = f"cannot serve {what} on {address}:{port}: {exc.strerror or exc}"
        raise ConfigError(f"{reason}; {hint}" if hint else reason) from None
    return sock
