"""A TCP relay that puts a network round trip in front of one local server: the latency profile of the benchmarks.

Started by ``bench/procs.py`` (one process per server, so relaying costs no measured process any CPU); never run by
hand. It prints one JSON line when ready (``{"endpoint": "http://127.0.0.1:PORT"}``), then reads commands from
stdin: ``rtt MILLISECONDS`` sets the round trip for connections opened from then on (answers ``{"ok": true}``).

What a client pays through it, as across a real network of that round trip (``rtt`` = 2 x one-way delay ``d``):

- every byte reaches the other side ``d`` after it was sent, in both directions, in order: a request and its answer
  cost one round trip, a request whose answer is awaited before the next one costs one more, and a client that keeps
  several connections busy overlaps them, as it would over the network;
- a new connection costs one round trip before its first byte reaches the server (the TCP handshake): the relay
  accepts at once, but holds the client's first bytes until ``rtt + d`` after the connect;
- the link itself is not slowed: no bandwidth limit and no window, so a stream is held back by latency, never by a
  bandwidth-delay product (real links are; this flatters large-object copies of every tool alike).

``--http``, for moto: werkzeug closes the connection after every answer (it cannot drain a request body safely
otherwise), which real S3 never does, and across a real network that would cost every request a second round trip.
The relay then keeps the client's connection alive as S3 does: it reads one request at a time (head and
``Content-Length`` body), opens a fresh loopback connection to the server for it (free: the server is local), relays
the answer to its end and removes its ``Connection: close``. The delays are the same: ``d`` each way, one round trip
for the client's connect.

Not Linux ``tc netem``: the kernel here has no netem qdisc (``Specified qdisc kind is unknown``), see
bench/README.md. Not the servers' ``latency`` fault: it sleeps before each request on the server, so it costs a
request a one-way delay at most and a new connection nothing.
"""

from __future__ import annotations

import asyncio
import collections
import json
import sys
import time

READ = 256 * 1024
#: bytes one direction of one connection may hold in flight before the relay stops reading (backpressure)
IN_FLIGHT = 64 * 1024 * 1024


class Link:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.one_way = 0.0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        opened = time.monotonic()
        d = self.one_way
        try:
            up_r, up_w = await asyncio.open_connection(self.host, self.port)
        except OSError:
            writer.close()
            return
        # the client's first bytes leave after the handshake's round trip: they arrive rtt + d after the connect
        upstream = asyncio.create_task(self._pump(reader, up_w, d, opened + 3 * d))
        downstream = asyncio.create_task(self._pump(up_r, writer, d, 0.0))
        await asyncio.gather(upstream, downstream, return_exceptions=True)
        for w in (up_w, writer):
            w.close()

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        delay: float,
        not_before: float,
        eof: bool = True,
    ) -> None:
        """Copy ``reader`` to ``writer``, each chunk ``delay`` after it was read (and not before ``not_before``)."""
        pending: collections.deque[tuple[float, bytes]] = collections.deque()
        held = 0
        room = asyncio.Event()
        room.set()
        arrived = asyncio.Event()
        done = False

        async def send() -> None:
            nonlocal held
            while True:
                while not pending:
                    if done:
                        return
                    arrived.clear()
                    await arrived.wait()
                due, chunk = pending[0]
                wait = max(due, not_before) - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                pending.popleft()
                writer.write(chunk)
                await writer.drain()
                held -= len(chunk)
                room.set()

        sender = asyncio.create_task(send())
        try:
            while True:
                if held >= IN_FLIGHT:
                    room.clear()
                    await room.wait()
                chunk = await reader.read(READ)
                if not chunk:
                    break
                pending.append((time.monotonic() + delay, chunk))
                held += len(chunk)
                arrived.set()
        except (ConnectionError, OSError):
            pass
        finally:
            done = True
            arrived.set()
        try:
            await sender
            if eof and writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, OSError):
            writer.close()


class HttpLink(Link):
    """One kept-alive client connection, one upstream connection per request (see ``--http`` above)."""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        not_before = time.monotonic() + 3 * self.one_way
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                up_r, up_w = await asyncio.open_connection(self.host, self.port)
                length, close = _framing(head)
                body = _Limited(reader, length)
                upstream = asyncio.create_task(self._pump(_Prefixed(head, body), up_w, self.one_way, not_before))
                answer = _KeepAlive(up_r) if not close else up_r
                await self._pump(answer, writer, self.one_way, 0.0, eof=False)  # type: ignore[arg-type]
                await upstream
                up_w.close()
                if close or body.left:
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, OSError):
            pass
        writer.close()


def _framing(head: bytes) -> tuple[int, bool]:
    """The request's body length and whether the client asked to close."""
    length, close = 0, False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            raise ConnectionError("chunked request bodies are not relayed in --http mode")
        elif name == b"connection" and value.strip().lower() == b"close":
            close = True
    return length, close


class _Limited:
    """The next ``left`` bytes of a stream, then end of stream."""

    def __init__(self, reader: asyncio.StreamReader, left: int) -> None:
        self.reader, self.left = reader, left

    async def read(self, n: int) -> bytes:
        if not self.left:
            return b""
        chunk = await self.reader.read(min(n, self.left))
        self.left -= len(chunk)
        return chunk


class _Prefixed:
    def __init__(self, first: bytes, rest: _Limited) -> None:
        self.first: bytes | None = first
        self.rest = rest

    async def read(self, n: int) -> bytes:
        if self.first is not None:
            first, self.first = self.first, None
            return first
        return await self.rest.read(n)


class _KeepAlive:
    """The server's answer (read to its end: the server closes), without ``Connection: close`` in its final head."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader
        self.head_done = False

    async def read(self, n: int) -> bytes:
        if self.head_done:
            return await self.reader.read(n)
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            self.head_done = True
            return exc.partial
        if head[9:10] == b"1":  # an interim answer (100 Continue) passes at once: the client waits for it
            return head
        self.head_done = True
        return b"\r\n".join(x for x in head.split(b"\r\n") if x.lower().replace(b" ", b"") != b"connection:close")


async def main(target: str, http: bool) -> None:
    host, _, port = target.rpartition(":")
    link = HttpLink(host, int(port)) if http else Link(host, int(port))
    server = await asyncio.start_server(link.handle, "127.0.0.1", 0)
    listen = server.sockets[0].getsockname()[1]
    print(json.dumps({"endpoint": f"http://127.0.0.1:{listen}"}), flush=True)
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    while line := await stdin.readline():  # end of stdin: the parent went away
        cmd, _, arg = line.decode().strip().partition(" ")
        if cmd == "rtt":
            link.one_way = float(arg) / 2000
            print(json.dumps({"ok": True}), flush=True)
        else:
            print(json.dumps({"error": f"unknown command {cmd!r}"}), flush=True)
    server.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1].removeprefix("http://"), "--http" in sys.argv[2:]))
