"""AlterClientQuotas v0 on a raw socket: confluent-kafka 2.16 and kafka-python 3 have no client
quota API, so the compat tests and results/quotas/measure.py set quotas with this (the Java
AdminClient and kafka-configs cover the API itself, in tests/jvm)."""

from __future__ import annotations

import socket
import struct

ALTER_CLIENT_QUOTAS = 49


def _string(text: str | None) -> bytes:
    if text is None:
        return struct.pack(">h", -1)
    raw = text.encode()
    return struct.pack(">h", len(raw)) + raw


def _read_string(buf: bytes, pos: int) -> tuple[str | None, int]:
    (length,) = struct.unpack_from(">h", buf, pos)
    pos += 2
    if length < 0:
        return None, pos
    return buf[pos:pos + length].decode(), pos + length


def alter_client_quotas(bootstrap: str, entity: dict[str, str | None], quotas: dict[str, float]) -> list[int]:
    """Sets `quotas` on `entity` ({"user": "alice", "client-id": None} = alice's <default>
    client); returns each entry's error code."""
    body = struct.pack(">i", 1)
    body += struct.pack(">i", len(entity))
    for kind, name in entity.items():
        body += _string(kind) + _string(name)
    body += struct.pack(">i", len(quotas))
    for key, value in quotas.items():
        body += _string(key) + struct.pack(">d?", value, False)
    body += struct.pack(">?", False)
    header = struct.pack(">hhi", ALTER_CLIENT_QUOTAS, 0, 1) + _string("quota-wire")
    frame = header + body
    host, port = bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=15) as conn:
        conn.sendall(struct.pack(">i", len(frame)) + frame)
        (size,) = struct.unpack(">i", _recv(conn, 4))
        response = _recv(conn, size)
    pos = 4 + 4  # correlation id, throttle_time_ms
    (count,) = struct.unpack_from(">i", response, pos)
    pos += 4
    codes = []
    for _ in range(count):
        (code,) = struct.unpack_from(">h", response, pos)
        codes.append(code)
        _, pos = _read_string(response, pos + 2)
        (parts,) = struct.unpack_from(">i", response, pos)
        pos += 4
        for _ in range(parts):
            _, pos = _read_string(response, pos)
            _, pos = _read_string(response, pos)
    return codes


def _recv(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        data += chunk
    return data
