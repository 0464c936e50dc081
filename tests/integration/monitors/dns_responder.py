"""A tiny DNS-over-TCP responder for the dns network test (a real server on a real socket).

It answers every query with NOERROR, no records, echoing the question: enough for
``dig +tcp`` to exit 0, which is all the original's dns test looks at.
"""

from __future__ import annotations

import asyncio
import struct


def answer(query: bytes) -> bytes:
    if len(query) < 12:
        raise ValueError("DNS message shorter than its 12-byte header")
    ident, _flags, qdcount = struct.unpack("!HHH", query[:6])
    if qdcount != 1:
        raise ValueError(f"expected one question, got {qdcount}")
    end = 12
    while query[end] != 0:  # the question name: length-prefixed labels, then a zero byte
        end += 1 + query[end]
    end += 1 + 4  # the zero byte, QTYPE and QCLASS
    # QR=1 (response), RD, RA, RCODE=0 (NOERROR); the question echoed; no records.
    return struct.pack("!HHHHHH", ident, 0x8180, 1, 0, 0, 0) + query[12:end]


class DnsResponder:
    def __init__(self) -> None:
        self.queries = 0
        self._server: asyncio.Server | None = None

    async def start(self, host: str = "127.0.0.1") -> int:
        self._server = await asyncio.start_server(self._serve, host, 0)
        return self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                (length,) = struct.unpack("!H", await reader.readexactly(2))
                query = await reader.readexactly(length)
                self.queries += 1
                reply = answer(query)
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except asyncio.IncompleteReadError:
            return  # the client closed the connection: the normal end of a dig query
        finally:
            writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
