"""A worker and its HTTP server as one service: started together, stopped together."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import signal
from collections.abc import Callable
from typing import TypeVar

from fastapi import HTTPException

from cdc_verify.api.app import create_app
from cdc_verify.api.guard import HttpLimits, check_token, unguarded_warning
from cdc_verify.api.server import HttpServer
from cdc_verify.pipeline.redis.streams import StreamPair
from cdc_verify.pipeline.redis.topology import Topology
from cdc_verify.pipeline.runners.worker import StreamWorker

log = logging.getLogger(__name__)
T = TypeVar("T")
# What the API waits for the worker's loop to hand over its in-memory state (groups,
# pending joins); a loop that does not answer within it is busy or wedged.
WORKER_CALL_TIMEOUT_S = 5.0


class WorkerCalls:
    """Runs small reads of the worker's in-memory state on the worker's own loop, for the
    API on its thread: no lock, and no dict read while the worker changes it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    async def __call__(self, read: Callable[[], T]) -> T:
        done: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            if done.set_running_or_notify_cancel():
                try:
                    done.set_result(read())
                except Exception as exc:
                    done.set_exception(exc)

        try:
            self._loop.call_soon_threadsafe(run)
            return await asyncio.wait_for(asyncio.wrap_future(done), WORKER_CALL_TIMEOUT_S)
        except (TimeoutError, RuntimeError) as exc:  # RuntimeError: the loop is closed
            done.cancel()
            raise HTTPException(
                503, f"the worker's loop did not answer within {WORKER_CALL_TIMEOUT_S:g}s"
            ) from exc


class WorkerService:
    def __init__(self, worker: StreamWorker) -> None:
        self.worker = worker
        self._http: HttpServer | None = None

    def bind_http(self) -> str:
        """Binds the HTTP port (settings.http_host/http_port); returns the base URL.

        Raises HttpExposureError for an empty token; warns of an unguarded API on an
        address other than loopback.
        """
        s = self.worker.settings
        check_token(s)
        self._http = HttpServer(s.http_host, s.http_port, HttpLimits.from_settings(s))
        url = self._http.bind()
        warning = unguarded_warning(s, url)
        if warning:
            log.warning("%s", warning)
        return url

    async def run(self) -> None:
        """Runs until the worker stops (stop() or a fatal error); then stops the server."""
        http = self._http
        if http is None:
            await self.worker.run()
            return
        s = self.worker.settings
        on_worker = WorkerCalls(asyncio.get_running_loop())

        async def serve() -> None:  # on the HTTP server's thread and loop
            # The API's own connections: queries never wait on a batch.
            topology = await Topology.open(s, lenient=True)
            try:
                streams = StreamPair.from_topology(topology, s.consumer_name)
                app = create_app(self.worker, topology.state, streams, on_worker)
                await http.serve(app)
            finally:
                await topology.aclose()

        http.start(serve)
        try:
            await self.worker.run()
        finally:
            http.stop()
            await asyncio.to_thread(http.join, 10)

    def stop(self) -> None:
        self.worker.stop()

    async def run_until_signal(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        await self.run()
