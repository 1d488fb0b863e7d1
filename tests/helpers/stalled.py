"""A raw WebSocket client that subscribes and then stops reading, as a stalled consumer does.

Client libraries read in the background (and answer pings); a client that
truly stops reading must be a bare socket with a tiny receive window, so the
server's sends back up after a few frames.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
from typing import Any

__all__ = ["StalledSocket"]

_READ_CHUNK = 65536


def _frame(payload: dict[str, Any]) -> bytes:
    """A masked client text frame (RFC 6455 section 5.2)."""
    data = json.dumps(payload).encode()
    mask = os.urandom(4)
    header = bytearray([0x81])
    if len(data) < 126:
        header.append(0x80 | len(data))
    elif len(data) < 65536:
        header += bytes([0x80 | 126]) + struct.pack("!H", len(data))
    else:
        header += bytes([0x80 | 127]) + struct.pack("!Q", len(data))
    return bytes(header) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


class StalledSocket:
    """A graphql-transport-ws connection that reads nothing until told to.

    Args:
        url: the server's ``http://host:port/graphql``.
        receive_buffer: ``SO_RCVBUF`` in bytes; small, so the server's sends block
            after a few frames (and reading later is slow); ``None`` for the
            system's default, which holds several MiB on loopback.
    """

    def __init__(self, url: str, *, receive_buffer: int | None = 4096) -> None:
        host, port = url.removeprefix("http://").split("/")[0].split(":")
        self._sock = socket.create_connection((host, int(port)), timeout=10)
        if receive_buffer is not None:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        key = base64.b64encode(os.urandom(16)).decode()
        self._sock.sendall(
            (
                f"GET /graphql HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
            ).encode()
        )
        response = b""
        while b"\r\n\r\n" not in response:
            response += self._sock.recv(1)
        assert response.startswith(b"HTTP/1.1 101"), response
        self._buffer = response.split(b"\r\n\r\n", 1)[1]
        self.close_code: int | None = None
        self._sock.sendall(_frame({"type": "connection_init", "payload": {}}))

    def subscribe(self, op_id: str, query: str, variables: dict[str, Any] | None = None) -> None:
        """Send a ``subscribe`` message; nothing is read."""
        payload = {"query": query, "variables": variables or {}}
        self._sock.sendall(_frame({"id": op_id, "type": "subscribe", "payload": payload}))

    def messages(self, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Read until the server closes the socket (or ``timeout`` passes without a byte).

        Returns every text message received, decoded; a close frame ends the
        list and sets :attr:`close_code`.
        """
        self._sock.settimeout(timeout)
        messages: list[dict[str, Any]] = []
        while True:
            frame = self._next_frame()
            if frame is None:
                return messages
            opcode, data = frame
            if opcode == 0x8:  # close
                self.close_code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 1005
                return messages
            if opcode == 0x1:
                messages.append(json.loads(data))

    def close(self) -> None:
        """Drop the connection without a close frame."""
        self._sock.close()

    def _next_frame(self) -> tuple[int, bytes] | None:
        header = self._read(2)
        if header is None:
            return None
        length = header[1] & 0x7F
        if length == 126:
            extended = self._read(2)
            length = struct.unpack("!H", extended)[0] if extended else 0
        elif length == 127:
            extended = self._read(8)
            length = struct.unpack("!Q", extended)[0] if extended else 0
        data = self._read(length)
        if data is None:
            return None
        return header[0] & 0x0F, data

    def _read(self, count: int) -> bytes | None:
        while len(self._buffer) < count:
            try:
                chunk = self._sock.recv(_READ_CHUNK)
            except (TimeoutError, ConnectionError):
                return None
            if not chunk:
                return None
            self._buffer += chunk
        data, self._buffer = self._buffer[:count], self._buffer[count:]
        return data
