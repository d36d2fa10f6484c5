"""A TCP proxy in front of Redis that calls the test back when a client sends a chosen request.

It forwards bytes both ways. When the first request batch of a connection (the bytes a client sends
before Redis answers, as a pipeline sends them) holds every one of ``markers``, ``on_match`` is
called once before the batch is forwarded: a test stops the Redis there (SIGSTOP), so the request
lands when the Redis resumes but its answer comes after the client gave up. The fault is triggered by
the protocol itself, not by timing, so a test hits the same point every run.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from contextlib import suppress


class TappingProxy:
    """Forwards 127.0.0.1:``port`` to ``upstream``; calls ``on_match`` after the first batch holding
    every one of ``markers``."""

    def __init__(self, upstream: tuple[str, int], markers: list[bytes], on_match: Callable[[], None]) -> None:
        self.upstream, self.markers, self.on_match = upstream, markers, on_match
        self.matched = threading.Event()  # set once ``on_match`` returned
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self) -> None:
        """Close every socket: the clients see their connections drop."""
        with self._lock:
            for sock in [self._listener, *self._sockets]:
                with suppress(OSError):
                    sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client = self._listener.accept()[0]
                server = socket.create_connection(self.upstream)
            except OSError:
                return
            with self._lock:
                self._sockets += [client, server]
            batch = _Batch()
            threading.Thread(target=self._requests, args=(client, server, batch), daemon=True).start()
            threading.Thread(target=self._answers, args=(server, client, batch), daemon=True).start()

    def _requests(self, client: socket.socket, server: socket.socket, batch: _Batch) -> None:
        """Forward the client's bytes; before the first batch holding every marker, call ``on_match``."""
        while data := _receive(client):
            held = batch.add(data)
            if all(m in held for m in self.markers) and not self.matched.is_set():
                with self._lock:
                    if not self.matched.is_set():
                        self.on_match()
                        self.matched.set()
            _send(server, data)
        _close_towards(server)

    def _answers(self, server: socket.socket, client: socket.socket, batch: _Batch) -> None:
        """Forward Redis's bytes; each answer ends the client's batch."""
        while data := _receive(server):
            batch.clear()
            _send(client, data)
        _close_towards(client)


class _Batch:
    """The bytes a connection's client sent since Redis last answered it."""

    def __init__(self) -> None:
        self._data = b""
        self._lock = threading.Lock()

    def add(self, data: bytes) -> bytes:
        with self._lock:
            self._data += data
            return self._data

    def clear(self) -> None:
        with self._lock:
            self._data = b""


def _close_towards(sock: socket.socket) -> None:
    with suppress(OSError):
        sock.shutdown(socket.SHUT_WR)


def _send(sock: socket.socket, data: bytes) -> None:
    with suppress(OSError):  # the other side is gone: its own pump sees the end
        sock.sendall(data)


def _receive(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""
