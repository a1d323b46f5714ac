"""Bounds on the HTTP server, so that no client can starve the verifier beside it.

They act before the bearer token is checked (docs/topology.md#the-http-server-and-its-bounds):

- at most `http_max_connections` open connections: past it the one that has waited longest
  without sending a whole request is closed (so a probe always gets in), or the new one
  when every connection has a request in hand;
- `http_request_timeout` seconds to send a whole request, headers and body, counted from
  the connection (or the end of the previous answer): slowloris clients are dropped;
- request headers of at most 16 KiB (h11 answers 400 past it);
- at most `http_max_requests` API requests (/api, /metrics) answered at once: 503 past it;
  the probes and the status page are never refused;
- answers of at most `http_max_answer_bytes`: 413 past it; an answer goes out in pieces
  of 64 KiB as the client takes them, and a client that has not taken all of it within
  `http_answer_timeout` seconds is disconnected (a reader that never reads holds neither
  memory nor a request slot for long);
- a Host header that is an IP address, a loopback name, the bound host or one of
  `http_allowed_hosts`: 400 otherwise, so a page on another site cannot read the API
  through DNS rebinding.
"""

from __future__ import annotations

import asyncio
import contextvars
import ipaddress
import json
import logging
from dataclasses import dataclass
from typing import ClassVar

import h11
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from cdc_verify.config.settings import Settings

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 16 * 1024  # h11's incomplete-event limit: the request line and headers
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})
ANSWER_CHUNK = 64 * 1024  # uvicorn waits for the client between pieces (its flow control)
# Paths the in-flight cap counts: the probes and the page shell must answer a kubelet and
# an operator even while the API is busy.
LIMITED_PREFIXES = ("/api/", "/metrics")


class HttpExposureError(ValueError):
    """A setting that would serve the API with less protection than it says."""


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_token(settings: Settings) -> None:
    """An empty token would turn the bearer check off without a word: refuse it."""
    token = settings.http_token
    if token is not None and not token.get_secret_value().strip():
        raise HttpExposureError(
            "CDC_VERIFY_HTTP_TOKEN is set but empty, which would serve the API without a "
            "bearer token: unset it to serve without one (on loopback only, preferably), or "
            "set a token, e.g. CDC_VERIFY_HTTP_TOKEN=$(python3 -c 'import secrets; "
            "print(secrets.token_urlsafe(32))')"
        )


def unguarded_warning(settings: Settings, url: str) -> str | None:
    """What to say of an API served beyond this machine without a token (None: nothing)."""
    if settings.http_token is not None or is_loopback(settings.http_host.strip("[]")):
        return None
    return (
        f"the HTTP API at {url} has no bearer token and listens beyond loopback: anyone "
        "who reaches it reads the alerts and verdict records; set CDC_VERIFY_HTTP_TOKEN, "
        "or bind to 127.0.0.1 (--http-host)"
    )


@dataclass(frozen=True, slots=True)
class HttpLimits:
    max_connections: int
    request_timeout: float
    max_requests: int
    max_answer_bytes: int
    answer_timeout: float
    allowed_hosts: frozenset[str]  # lower case, without port; "*": any

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpLimits:
        hosts = {h.strip().lower().strip("[]") for h in settings.http_allowed_hosts}
        bound = settings.http_host.lower().strip("[]")
        if bound not in WILDCARD_HOSTS:
            hosts.add(bound)
        return cls(
            max_connections=settings.http_max_connections,
            request_timeout=settings.http_request_timeout,
            max_requests=settings.http_max_requests,
            max_answer_bytes=int(settings.http_max_answer_bytes),
            answer_timeout=settings.http_answer_timeout,
            allowed_hosts=frozenset(hosts | LOOPBACK_NAMES),
        )


class ConnectionGuard:
    """The open connections of one server, and those that still owe a request (oldest
    first): what the connection cap closes first."""

    def __init__(self, limits: HttpLimits) -> None:
        self.limits = limits
        self.open: dict[GuardedH11Protocol, None] = {}
        self.waiting: dict[GuardedH11Protocol, None] = {}
        self.evicted = 0  # closed to make room for a new connection
        self.refused = 0  # closed at once: every connection had a request in hand
        self.timed_out = 0  # closed after request_timeout without a whole request

    def protocol(self) -> type[GuardedH11Protocol]:
        """uvicorn's `http` protocol class for a server under these bounds."""
        return type("GuardedH11", (GuardedH11Protocol,), {"guard": self})


# The connection a request came on, for its app task (created in handle_events, which
# copies the context): an answer that is not taken in time aborts it.
CONNECTION: contextvars.ContextVar[GuardedH11Protocol] = contextvars.ContextVar("connection")


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a connection cap and a deadline for each request.

    uvicorn has no timeout for a request's headers or body (its keep-alive timer starts
    only after an answer), and its limit_concurrency answers 503 to every request, the
    probes' too, once idle connections reach it.
    """

    guard: ClassVar[ConnectionGuard]
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        guard = self.guard
        if len(guard.open) >= guard.limits.max_connections:
            oldest = next(iter(guard.waiting), None)
            if oldest is None:
                guard.refused += 1
                transport.close()
                return
            guard.evicted += 1
            oldest._close()
        guard.open[self] = None
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        self._forget()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        CONNECTION.set(self)
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        CONNECTION.set(self)  # a pipelined request starts here
        super().on_response_complete()
        self._watch()

    def abort(self) -> None:
        self._forget()
        self.transport.abort()

    def _watch(self) -> None:
        """Start the request's deadline when the client owes us a request (or the rest of
        one); stop it once the request is in. The deadline is never pushed back."""
        owes = self.conn.their_state in (h11.IDLE, h11.SEND_BODY)
        if owes and self._deadline is None and not self.transport.is_closing():
            self._deadline = self.loop.call_later(self.guard.limits.request_timeout, self._expire)
            self.guard.waiting[self] = None
        elif not owes and self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
            self.guard.waiting.pop(self, None)

    def _expire(self) -> None:
        self._deadline = None
        self.guard.timed_out += 1
        log.debug("closing %s: no whole request within %gs", self.client,
                  self.guard.limits.request_timeout)  # fmt: skip
        self._close()

    def _close(self) -> None:
        self._forget()
        self.transport.close()

    def _forget(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self.guard.open.pop(self, None)
        self.guard.waiting.pop(self, None)


def host_of(header: str) -> str:
    """The host of a Host header, without its port: `[::1]:80` -> `::1`."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    name, colon, port = header.rpartition(":")
    return name if colon and port.isdigit() and ":" not in name else header


def host_allowed(host: str, allowed: frozenset[str]) -> bool:
    if "*" in allowed or host in allowed:
        return True
    try:
        ipaddress.ip_address(host)  # a browser sends an IP only when the URL has it:
        return True  # DNS rebinding needs a name
    except ValueError:
        return False


async def _problem(send: Send, status: int, detail: str, headers: dict[str, str]) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class GuardMiddleware:
    """The Host check, the in-flight cap and the answer cap, in front of the app."""

    def __init__(self, app: ASGIApp, limits: HttpLimits) -> None:
        self.app = app
        self.limits = limits
        self._in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        host = host_of(headers.get(b"host", b"").decode("latin-1"))
        if host and not host_allowed(host, self.limits.allowed_hosts):
            await _problem(send, 400, (
                f"Host {host!r} is not served here: add it to http_allowed_hosts "
                "(--http-allowed-hosts) if it is this worker's name"
            ), {})  # fmt: skip
            return
        limited = scope["path"].startswith(LIMITED_PREFIXES)
        if limited and self._in_flight >= self.limits.max_requests:
            await _problem(send, 503, (
                f"the API is answering {self._in_flight} requests, its most at once "
                "(http_max_requests): try again shortly"
            ), {"retry-after": "1"})  # fmt: skip
            return
        self._in_flight += limited
        try:
            await self.app(scope, receive, _bounded(send, self.limits))
        finally:
            self._in_flight -= limited


def _bounded(send: Send, limits: HttpLimits) -> Send:
    """An answer over the cap (by its Content-Length) is replaced by a 413; the others go
    out in pieces, within the answer timeout."""
    cap = limits.max_answer_bytes
    dropped = False
    deadline = asyncio.get_running_loop().time() + limits.answer_timeout

    async def bounded_send(message: Message) -> None:
        nonlocal dropped
        if dropped:
            return  # replaced by a 413, or its client was disconnected
        if message["type"] == "http.response.start":
            size = dict(message.get("headers", [])).get(b"content-length")
            if size is not None and int(size) > cap:
                dropped = True
                await _problem(send, 413, answer_too_big(int(size), cap), {})
                return
        if message["type"] != "http.response.body":
            await send(message)
            return
        body, more = message.get("body", b""), message.get("more_body", False)
        pieces = [body[i : i + ANSWER_CHUNK] for i in range(0, len(body), ANSWER_CHUNK)]
        try:
            async with asyncio.timeout_at(deadline):
                for i, piece in enumerate(pieces or [b""]):
                    last = i == len(pieces) - 1 or not pieces
                    await send({**message, "body": piece, "more_body": more or not last})
        except TimeoutError:
            dropped = True
            connection = CONNECTION.get(None)
            who = connection.client if connection else "a client"
            log.info("disconnecting %s: answer not taken in %gs", who, limits.answer_timeout)
            if connection is not None:
                connection.abort()

    return bounded_send


def answer_too_big(size: int, cap: int, what: str = "the answer") -> str:
    return (
        f"{what} would be {size:,} bytes, more than http_max_answer_bytes ({cap:,}): "
        "ask for less (a smaller limit), or raise the setting"
    )
