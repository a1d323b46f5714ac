"""A worker and its HTTP server as one service: started together, stopped together."""

from __future__ import annotations

import asyncio
import contextlib
import signal

from cdc_verify.api.app import create_app
from cdc_verify.api.server import HttpServer
from cdc_verify.pipeline.redis.streams import StreamPair
from cdc_verify.pipeline.redis.topology import Topology
from cdc_verify.pipeline.runners.worker import StreamWorker


class WorkerService:
    def __init__(self, worker: StreamWorker) -> None:
        self.worker = worker
        self._http: HttpServer | None = None

    def bind_http(self) -> str:
        """Binds the HTTP port (settings.http_host/http_port); returns the base URL."""
        s = self.worker.settings
        self._http = HttpServer(s.http_host, s.http_port)
        return self._http.bind()

    async def run(self) -> None:
        """Runs until the worker stops (stop() or a fatal error); then stops the server."""
        if self._http is None:
            await self.worker.run()
            return
        s = self.worker.settings
        # The API's own connections: queries never wait on a batch.
        topology = await Topology.open(s, lenient=True)
        streams = StreamPair.from_topology(topology, s.consumer_name)
        app = create_app(self.worker, topology.state, streams)
        serving = asyncio.create_task(self._http.serve(app))
        try:
            await self.worker.run()
        finally:
            self._http.stop()
            with contextlib.suppress(Exception):
                await serving
            await topology.aclose()

    def stop(self) -> None:
        self.worker.stop()

    async def run_until_signal(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        await self.run()
