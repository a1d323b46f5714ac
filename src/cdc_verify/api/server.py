"""Serves the API on a thread and event loop of its own, with a start/stop the worker controls.

The HTTP server has its own loop (and its own Redis connections) so that no client, slow,
idle or asking for big answers, can hold up the verifier's loop: the worker renews its lock
and reads its streams whatever the API is doing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import uvicorn
from fastapi import FastAPI

from cdc_verify.api.guard import MAX_HEADER_BYTES, ConnectionGuard, GuardMiddleware, HttpLimits

log = logging.getLogger(__name__)
BACKLOG = 2048  # the kernel queues connections here until the server's loop takes them
SHUTDOWN_S = 5  # requests still in hand when the worker stops get this long to finish


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The worker owns SIGTERM/SIGINT: it finishes its batch, then stops us.
        yield


class HttpServer:
    def __init__(self, host: str, port: int, limits: HttpLimits) -> None:
        self._host, self._port = host, port
        self.limits = limits
        self.guard = ConnectionGuard(limits)
        self._server: _EmbeddedServer | None = None
        self._stopped = False
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def bind(self) -> str:
        """Binds the port now, so a port in use is a clear error before any work starts.

        Returns the base URL (port 0 binds a free port). The socket listens at once:
        a client that comes before the server's loop runs waits instead of being refused.
        """
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self._host, self._port))
            sock.listen(BACKLOG)
        except OSError:
            sock.close()
            raise
        sock.set_inheritable(True)
        self._socket = sock
        return self.url

    @property
    def url(self) -> str:
        assert self._socket is not None, "bind() first"
        host, port = self._socket.getsockname()[:2]
        return f"http://{f'[{host}]' if ':' in host else host}:{port}"

    async def serve(self, app: FastAPI) -> None:
        """Serves `app` on the running loop until stop()."""
        if self._socket is None:
            self.bind()
        assert self._socket is not None
        config = uvicorn.Config(
            GuardMiddleware(app, self.limits),
            log_level="warning",
            access_log=False,
            lifespan="off",
            server_header=False,
            http=self.guard.protocol(),
            h11_max_incomplete_event_size=MAX_HEADER_BYTES,
            backlog=BACKLOG,
            timeout_graceful_shutdown=SHUTDOWN_S,
        )
        self._server = _EmbeddedServer(config)
        self._server.should_exit = self._stopped
        await self._server.serve(sockets=[self._socket])

    def start(self, main: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Runs `main` (which calls serve()) on a new thread with its own event loop."""

        def thread() -> None:
            try:
                asyncio.run(main())
            except Exception:
                log.exception("the HTTP server stopped; the worker goes on without it")

        self._thread = threading.Thread(target=thread, name="cdc-verify-http", daemon=True)
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def stop(self) -> None:
        """Asks the server to stop (from any thread): it closes within a few tenths of a
        second."""
        self._stopped = True
        if self._server is not None:
            self._server.should_exit = True
