"""A TCP proxy in front of RabbitMQ that freezes like a stopped broker or a partitioned network.

It forwards bytes both ways until a client sends a chosen AMQP method (say the first
``Basic.Publish``); from then on it forwards nothing in either direction, that method included,
while every socket stays open: the client's connection is up, nothing it sends is read by the
broker and nothing is answered. New connections are accepted and frozen too. The freeze is
triggered by the protocol itself, not by timing, so a test hits the same point every run.
"""

from __future__ import annotations

import socket
import struct
import threading
from contextlib import suppress

#: AMQP 0-9-1 methods (class id, method id) a proxy can freeze on.
CHANNEL_OPEN = (20, 10)
BASIC_PUBLISH = (60, 40)

#: The protocol header a client sends first, and the size of a frame's header (type, channel, size).
PROTOCOL_HEADER_SIZE = 8
FRAME_HEADER = struct.Struct(">BHI")
METHOD_ID = struct.Struct(">HH")  # a method frame's payload starts with its class id and method id
METHOD_FRAME = 1


class FreezingProxy:
    """Forwards 127.0.0.1:``port`` to ``upstream`` until a client sends ``freeze_on``, then nothing."""

    def __init__(self, upstream: tuple[str, int], freeze_on: tuple[int, int]) -> None:
        self.upstream, self.freeze_on = upstream, freeze_on
        self.frozen = threading.Event()  # set when the proxy froze
        self._stopped = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self) -> None:
        """Close every socket (the clients see their connections drop) and end the threads."""
        self._stopped.set()
        with self._lock:
            for sock in [self._listener, *self._sockets]:
                with suppress(OSError):
                    sock.close()

    def _keep(self, sock: socket.socket) -> socket.socket:
        with self._lock:
            self._sockets.append(sock)
        return sock

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client = self._keep(self._listener.accept()[0])
                broker = self._keep(socket.create_connection(self.upstream))
            except OSError:
                return
            threading.Thread(target=self._from_client, args=(client, broker), daemon=True).start()
            threading.Thread(target=self._from_broker, args=(broker, client), daemon=True).start()

    def _from_broker(self, broker: socket.socket, client: socket.socket) -> None:
        """Forward the broker's bytes as they come, until the freeze (what comes after it is dropped)."""
        while not self.frozen.is_set():
            data = self._receive(broker)
            if self.frozen.is_set():
                break
            if not data:
                self._close_towards(client)
                return
            self._send(client, data)
        self._stopped.wait()  # frozen: read nothing more, keep both sockets open

    def _from_client(self, client: socket.socket, broker: socket.socket) -> None:
        """Forward the client's frames whole; freeze on the first ``freeze_on`` method frame."""
        pending, header_sent = b"", False
        while not self.frozen.is_set():
            data = self._receive(client)
            if not data:
                self._close_towards(broker)
                return
            pending += data
            if not header_sent and len(pending) >= PROTOCOL_HEADER_SIZE:
                self._send(broker, pending[:PROTOCOL_HEADER_SIZE])
                pending, header_sent = pending[PROTOCOL_HEADER_SIZE:], True
            while header_sent and len(pending) >= FRAME_HEADER.size:
                kind, _, size = FRAME_HEADER.unpack_from(pending)
                end = FRAME_HEADER.size + size + 1  # the payload, then the frame-end octet
                if len(pending) < end:
                    break
                method = METHOD_ID.unpack_from(pending, FRAME_HEADER.size) if kind == METHOD_FRAME else None
                if method == self.freeze_on:
                    self.frozen.set()
                if self.frozen.is_set():
                    break
                self._send(broker, pending[:end])
                pending = pending[end:]
        self._stopped.wait()

    def _close_towards(self, sock: socket.socket) -> None:
        """Before the freeze, a side that closed closes the other: the peer sees the connection end."""
        with suppress(OSError):
            sock.shutdown(socket.SHUT_WR)

    def _send(self, sock: socket.socket, data: bytes) -> None:
        with suppress(OSError):  # the other side is gone: its own pump sees the end
            sock.sendall(data)

    def _receive(self, sock: socket.socket) -> bytes:
        try:
            return sock.recv(65536)
        except OSError:
            return b""
