"""Serves the API inside the worker's event loop, with a start/stop the worker controls."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The worker owns SIGTERM/SIGINT: it finishes its batch, then stops us.
        yield


class HttpServer:
    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self._server: _EmbeddedServer | None = None
        self._stopped = False
        self._socket: socket.socket | None = None

    def bind(self) -> str:
        """Binds the port now, so a port in use is a clear error before any work starts.

        Returns the base URL (port 0 binds a free port).
        """
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self._host, self._port))
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
        if self._socket is None:
            self.bind()
        assert self._socket is not None
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="off", server_header=False
        )
        self._server = _EmbeddedServer(config)
        self._server.should_exit = self._stopped
        await self._server.serve(sockets=[self._socket])

    def stop(self) -> None:
        self._stopped = True
        if self._server is not None:
            self._server.should_exit = True
