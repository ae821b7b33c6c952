"""A cap on connections in flight: above it, a fast 503 instead of a handshake that hangs.

What is counted is ASGI scopes, not TCP connections: HTTP requests being
answered and WebSockets open (an idle WebSocket counts for as long as it
is open, an idle keep-alive connection between requests does not; Hypercorn
closes those after ``keep_alive_timeout``). At the ASGI level the refusal
can be an answer a client understands, our JSON error with
``Retry-After``, and the probes can be told apart by their path; a cap on
TCP connections in the worker could only close sockets, before any request
(or path) is read.

Above the cap:

* HTTP: ``503`` with ``Retry-After`` and ``{"error": {"code":
  "too_many_connections", ...}}``; on HTTP/1.x also ``Connection: close``,
  so a refused client frees its socket.
* WebSocket: refused at the handshake with the same 503 response (the ASGI
  ``websocket.http.response`` extension, which Hypercorn offers); real
  clients report the status (``websockets``: ``InvalidStatus: HTTP 503``,
  trio-websocket: ``ConnectionRejected`` with status 503). The socket is
  never accepted, so the refusal costs no WebSocket upgrade. Where the
  server lacks the extension, the socket is accepted and closed with 1013
  (Try Again Later).

``/health``, ``/ready`` and ``/metrics`` are neither counted nor refused: a
client flood must not make probes fail (and an orchestrator restart a
healthy server), and the flood should show in the metrics while it lasts.
"""

from __future__ import annotations

import json
import logging
import resource
from pathlib import Path
from typing import Any

from quart_trio import QuartTrio

from tts_trio.api.state import state_of
from tts_trio.errors import TooManyConnections
from tts_trio.settings import DEFAULT_MAX_CONNECTIONS, Settings

log = logging.getLogger(__name__)

#: Paths answered whatever the count: the probes, and the metrics that show the flood.
EXEMPT_PATHS = frozenset({"/health", "/ready", "/metrics"})
#: Seconds a refused client is told to wait: a flood of handshakes passes in about that long.
RETRY_AFTER = 2
#: WebSocket close code "Try Again Later" (RFC 6455 registry), for servers without the HTTP-response extension.
TRY_AGAIN_LATER = 1013
SOMAXCONN = Path("/proc/sys/net/core/somaxconn")

Asgi = Any  # the ASGI callables: typed loosely, the app is Quart's and the server Hypercorn's


def open_files_limit() -> int | None:
    """The soft RLIMIT_NOFILE, or ``None`` when there is none."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def effective_max_connections(settings: Settings) -> int:
    """The cap to apply: the setting if given (0: none), else derived from the open-files limit."""
    if settings.max_connections is not None:
        return settings.max_connections
    files = open_files_limit()
    return DEFAULT_MAX_CONNECTIONS if files is None else max(1, min(DEFAULT_MAX_CONNECTIONS, files // 2))


def start_up_warnings(backlog: int, max_connections: int, somaxconn: Path = SOMAXCONN) -> list[str]:
    """What a start-up log should warn of: a backlog the kernel caps, a cap above the open-files limit."""
    warnings: list[str] = []
    try:
        kernel = int(somaxconn.read_text().strip()) if somaxconn.is_file() else None
    except (OSError, ValueError):
        kernel = None
    if kernel is not None and backlog > kernel:
        warnings.append(
            f"backlog {backlog} exceeds net.core.somaxconn ({kernel}); the kernel queues at most {kernel} "
            f"connections: raise it (sysctl -w net.core.somaxconn={backlog}) or lower TTS_BACKLOG"
        )
    files = open_files_limit()
    if files is not None and max_connections > files:
        warnings.append(
            f"max_connections {max_connections} exceeds the open-files limit ({files}); above it connections "
            "wait in the backlog instead of being refused: raise the limit (ulimit -n, LimitNOFILE=) "
            "or lower TTS_MAX_CONNECTIONS"
        )
    return warnings


class ConnectionLimit:
    """ASGI middleware: counts HTTP requests and WebSockets in flight, refuses new ones above ``limit``.

    ``limit`` 0 counts without refusing. One instance per app; the count
    is touched only from the server's event loop, so it needs no lock.
    """

    def __init__(self, app: Asgi, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.open = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket") or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        if self.limit and self.open >= self.limit:
            await self._refuse(scope, receive, send)
            return
        self.open += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.open -= 1

    async def _refuse(self, scope: Any, receive: Any, send: Any) -> None:
        error = TooManyConnections(
            f"the server has {self.limit} connections open, its maximum; retry in {RETRY_AFTER} s",
            retry_after=RETRY_AFTER,
        )
        body = json.dumps({"error": error.to_dict()}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(RETRY_AFTER).encode()),
        ]
        if scope.get("http_version", "1.1") in ("1.0", "1.1"):
            headers.append((b"connection", b"close"))  # HTTP/2 forbids the header; its stream ends anyway
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": error.status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        elif "websocket.http.response" in scope.get("extensions", {}):
            await send({"type": "websocket.http.response.start", "status": error.status, "headers": headers})
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            message = await receive()  # websocket.connect
            if message["type"] == "websocket.connect":
                await send({"type": "websocket.accept"})
                await send({"type": "websocket.close", "code": TRY_AGAIN_LATER, "reason": "too many connections"})


def install(app: QuartTrio, limit: int) -> ConnectionLimit:
    """Wrap ``app``'s ASGI callable (Quart's middleware hook) and expose the count as ``tts_open_connections``."""
    middleware = ConnectionLimit(app.asgi_app, limit)
    app.asgi_app = middleware  # type: ignore[method-assign]
    state = state_of(app)
    if state is not None:
        state.metrics.open_connections.set_function(lambda: middleware.open)
    log.debug("connection cap: %s", limit or "none")
    return middleware


def limit_of(app: QuartTrio) -> ConnectionLimit | None:
    """The middleware :func:`install` put on ``app``, if any."""
    middleware = app.asgi_app
    return middleware if isinstance(middleware, ConnectionLimit) else None
