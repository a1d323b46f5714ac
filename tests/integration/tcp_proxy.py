"""A loopback TCP proxy that the fault tests put between a client and a Redis server, to
break the network on purpose.

It listens on 127.0.0.1 (a free port unless one is given) and forwards each connection
to the upstream server, byte for byte, on an asyncio loop in a thread of its own. The
test drives it from its own thread:

- `cut()` resets every live connection, both directions: each socket is closed with
  `SO_LINGER` 0, so both the client and the server get a TCP RST, not a FIN;
- `pause()` stops forwarding bytes in either direction without closing anything (the
  client sees a hung connection until its socket timeout); `resume()` forwards again,
  what was held first; `stall(seconds)` pauses and resumes by itself after `seconds`;
- `refuse()` resets every new connection at once, until `accept()`; a connection the
  upstream server refuses (it is down) is reset the same way;
- `hold(pattern)` holds back the first bytes a client sends that contain `pattern` (a
  command name, say), and everything after them on that connection, until the returned
  `Hold` is released: one connection hung at one chosen command.

A connection is forwarded until either end closes it, and then closed on the other end.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

# SO_LINGER on, 0 s: close() drops the socket with a RST instead of the FIN handshake.
_RESET = struct.pack("ii", 1, 0)


class Hold:
    """A `hold()`: `started` is set once a client sent the pattern (its bytes are held from
    then on), `release()` lets them through."""

    def __init__(self, proxy: TcpProxy, pattern: bytes) -> None:
        self.proxy, self.pattern = proxy, pattern.upper()
        self.started = threading.Event()
        self.released = False
        self.half: _Half | None = None

    def release(self) -> None:
        async def release() -> None:
            self.released = True
            if self.half is not None:
                self.half.flush()

        self.proxy._call(release)


@dataclass
class ProxyStats:
    accepted: int = 0  # connections forwarded to the upstream server
    refused: int = 0  # new connections reset while refusing
    upstream_down: int = 0  # new connections reset because the server refused them
    cut: int = 0  # live connections reset by cut()
    pauses: int = 0  # pause() and stall() calls that stopped the bytes


class _Half(asyncio.Protocol):
    """One end of a proxied connection: what it receives is written to its peer."""

    def __init__(self, link: _Link, client: bool) -> None:
        self.link = link
        self.client = client  # the client's end (what it receives goes upstream)
        self.hold: Hold | None = None
        self.transport: asyncio.Transport | None = None
        self.peer: _Half | None = None
        self.held: list[bytes] = []  # received while paused (or before the peer existed)
        self.peer_full = False  # the peer's write buffer is above its high-water mark

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.link.closed:  # refused, or reset before its transport existed
            self.reset()

    def may_flow(self) -> bool:
        return (
            self.link.proxy.flowing
            and (self.hold is None or self.hold.released)
            and self.peer is not None
            and self.peer.transport is not None
        )

    def data_received(self, data: bytes) -> None:
        proxy = self.link.proxy
        if self.client and (self.hold is None or self.hold.released) and proxy.holds:
            upper = data.upper()
            for hold in proxy.holds:
                if hold.pattern in upper:
                    proxy.holds.remove(hold)
                    self.hold, hold.half = hold, self
                    hold.started.set()
                    break
        if self.may_flow() and not self.held:
            assert self.peer is not None and self.peer.transport is not None
            self.peer.transport.write(data)
        else:
            self.held.append(data)
        self.update_reading()

    def eof_received(self) -> bool:
        self.link.ended()
        return False  # the transport closes this end

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.link.ended()

    def pause_writing(self) -> None:  # this end's outgoing buffer is full
        if self.peer:
            self.peer.peer_full = True
            self.peer.update_reading()

    def resume_writing(self) -> None:
        if self.peer:
            self.peer.peer_full = False
            self.peer.flush()

    def flush(self) -> None:
        """Forwards what was held, if the bytes may flow now."""
        if self.may_flow():
            assert self.peer is not None and self.peer.transport is not None
            for data in self.held:
                self.peer.transport.write(data)
            self.held.clear()
        self.update_reading()

    def update_reading(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        reading = self.may_flow() and not self.peer_full and not self.held
        if reading and not self.transport.is_reading():
            self.transport.resume_reading()
        elif not reading and self.transport.is_reading():
            self.transport.pause_reading()

    def reset(self) -> None:
        """Drops this end's socket with a RST."""
        transport, self.transport = self.transport, None
        if transport is None:
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):  # already gone
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
        transport.abort()


class _Link:
    """A client connection and its connection to the upstream server."""

    def __init__(self, proxy: TcpProxy) -> None:
        self.proxy = proxy
        self.client = _Half(self, client=True)
        self.upstream: _Half | None = None
        self.closed = False
        self.closing = False  # an end closed while paused: the other closes on resume

    def ended(self) -> None:
        """One end closed: so does the other, after what was held (not while paused:
        a hung network does not pass a FIN on either)."""
        if self.proxy.flowing:
            self.close()
        else:
            self.closing = True

    def close(self) -> None:
        """Closes both ends (FIN), after what their transports still have to write."""
        for half in self._end():
            if half.transport is not None:
                half.transport.close()

    def reset(self) -> None:
        """Drops both ends with a RST."""
        for half in self._end():
            half.reset()

    def _end(self) -> list[_Half]:
        """The ends to close, once: none if the link was closed already."""
        if self.closed:
            return []
        self.closed = True
        self.proxy.links.discard(self)
        return [half for half in (self.client, self.upstream) if half is not None]

    async def connect(self) -> None:
        proxy = self.proxy
        try:
            _, upstream = await proxy.loop.create_connection(
                lambda: _Half(self, client=False), proxy.upstream_host, proxy.upstream_port
            )
        except OSError:
            proxy.stats.upstream_down += 1
            self.reset()
            return
        assert isinstance(upstream, _Half)
        if self.closed:  # the client went away, or was cut, while this connected
            upstream.reset()
            return
        self.upstream = upstream
        self.client.peer, upstream.peer = upstream, self.client
        proxy.stats.accepted += 1
        self.client.flush()
        upstream.flush()


class TcpProxy:
    """Forwards 127.0.0.1:`port` to `upstream_host`:`upstream_port`; see the module."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1", port: int = 0):
        self.upstream_host, self.upstream_port = upstream_host, upstream_port
        self.port = port
        self.stats = ProxyStats()
        self.flowing = True
        self.refusing = False
        self.links: set[_Link] = set()
        self.holds: list[Hold] = []  # armed, not yet started
        self.loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._resume_at: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        """The proxy as a Redis URL (database 0)."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> TcpProxy:
        self._thread.start()

        async def listen() -> None:
            self._server = await self.loop.create_server(
                self._accepted, "127.0.0.1", self.port, reuse_address=True
            )
            self.port = self._server.sockets[0].getsockname()[1]

        self._call(listen)
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return

        async def close() -> None:
            if self._resume_at:
                self._resume_at.cancel()
            if self._server:
                self._server.close()
            for link in list(self.links):
                link.reset()
            for task in list(self._tasks):
                task.cancel()

        self._call(close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- controls (called from the test's thread) ---

    def cut(self) -> int:
        """Resets every live connection (RST both ways); returns how many there were."""

        async def cut() -> int:
            links = list(self.links)
            for link in links:
                link.reset()
            self.stats.cut += len(links)
            return len(links)

        return self._call(cut)

    def pause(self) -> None:
        """Stops forwarding bytes, both ways, on every connection (new ones too)."""

        async def pause() -> None:
            if self._resume_at:
                self._resume_at.cancel()
                self._resume_at = None
            if self.flowing:
                self.stats.pauses += 1
            self.flowing = False
            self._update_all()

        self._call(pause)

    def resume(self) -> None:
        """Forwards again, first what was held while paused."""

        async def resume() -> None:
            self._resume()

        self._call(resume)

    def stall(self, seconds: float) -> None:
        """`pause()` now and `resume()` after `seconds`; returns at once."""
        self.pause()

        async def later() -> None:
            self._resume_at = self.loop.call_later(seconds, self._resume)

        self._call(later)

    def hold(self, pattern: bytes) -> Hold:
        """Holds the first bytes a client sends that contain `pattern` (any case), and
        all after them on that connection, until `release()`; other connections flow."""
        hold = Hold(self, pattern)

        async def arm() -> None:
            self.holds.append(hold)

        self._call(arm)
        return hold

    def refuse(self) -> None:
        """Resets each new connection as soon as it is accepted, until `accept()`."""
        self._set_refusing(True)

    def accept(self) -> None:
        self._set_refusing(False)

    @property
    def live(self) -> int:
        return self._call(self._live)

    # --- on the loop ---

    async def _live(self) -> int:
        return len(self.links)

    def _set_refusing(self, refusing: bool) -> None:
        async def set_it() -> None:
            self.refusing = refusing

        self._call(set_it)

    def _resume(self) -> None:
        self._resume_at = None
        self.flowing = True
        self._update_all()

    def _update_all(self) -> None:
        for link in list(self.links):
            for half in (link.client, link.upstream):
                if half is not None:
                    half.flush()
            if link.closing and self.flowing:
                link.close()

    def _accepted(self) -> _Half:
        link = _Link(self)
        if self.refusing:
            self.stats.refused += 1
            link.closed = True  # connection_made resets it
            return link.client
        self.links.add(link)
        task = self.loop.create_task(link.connect())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return link.client

    def _call(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        return asyncio.run_coroutine_threadsafe(make(), self.loop).result(10)
