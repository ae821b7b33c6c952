"""Bound every socket write, so a client that stops reading cannot hold the server.

Hypercorn 0.18's trio worker writes to the socket inside a cancel scope
that is shielded and has no deadline (``TCPServer.protocol_send``), so that
a cancelled write never leaves half a frame on the wire. The shield also
hides every timeout above it: a client that reads nothing blocks that write
forever, together with the response or WebSocket feeding it (our own send
timeouts cannot fire), and on SIGTERM the graceful timeout cannot end it
either, so ``podman stop`` ends in SIGKILL.

:func:`apply` keeps the shield and gives it a deadline: :data:`STALL_TIMEOUT`
seconds for one write, and never beyond the end of the graceful timeout once
the server drains (:meth:`tts_trio.synthesis.drain.Shutdown.socket_send`);
``TTS_SEND_TIMEOUT`` changes it. A write
that misses it means the client read nothing for that long; the connection
is closed at once (a half-sent frame no longer matters) and the protocol is
told, so the request sees a disconnect and its stream is cancelled like any
other.

It also finishes, shielded, the bookkeeping that marks a kept-alive
connection idle or closes it: Hypercorn does both inside the app's send
call, which Quart-Trio cancels when the client's disconnect message arrives,
and an interrupted one left the connection open (no keep-alive timeout, and
a SIGTERM with any client connected waited out the whole graceful timeout).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio
from hypercorn.events import Closed, RawData
from hypercorn.trio.tcp_server import TCPServer

from tts_trio.api.state import state_of
from tts_trio.server.hypercorn_fixes.guard import Fix, Target, replace
from tts_trio.synthesis.drain import Shutdown

NAME = "socket_sends"

#: Seconds one socket write may wait for a client that reads nothing (``TTS_SEND_TIMEOUT``).
STALL_TIMEOUT = 30.0
#: Seconds for Hypercorn's connection bookkeeping (mark idle, close) once shielded.
BOOKKEEPING_TIMEOUT = 5.0
_UNBOUNDED = Shutdown()  # for servers of apps that have none (never drains)


def _limits_of(server: Any) -> tuple[Shutdown, float]:
    """The draining state and send timeout of the app ``server`` serves (Hypercorn wraps the ASGI app)."""
    state = state_of(getattr(server.app, "app", None))
    if state is None:
        return _UNBOUNDED, STALL_TIMEOUT
    return state.shutdown, state.settings.send_timeout


def apply() -> None:
    """Wrap ``TCPServer.protocol_send`` once per process (idempotent)."""
    original: Callable[[Any, Any], Awaitable[None]] = TCPServer.protocol_send

    async def bounded_send(self: Any, event: Any) -> None:
        if not isinstance(event, RawData):
            # Updated (the connection is idle or busy) and Closed run inside the app's own send
            # call, which Quart-Trio cancels as soon as the client's disconnect message arrives.
            # Cancelled half-way, an idle connection never gets its idle task and a closing one
            # is never closed: both stay open, past keep_alive_timeout and through a whole
            # graceful timeout. Both steps are quick (a lock, a task start, closing a socket);
            # the deadline only guards a TLS close that waits on a peer that reads nothing.
            with trio.move_on_after(BOOKKEEPING_TIMEOUT) as scope:
                scope.shield = True
                await original(self, event)
            if scope.cancelled_caught:
                await trio.aclose_forcefully(self.stream)
            return
        shutdown, timeout = _limits_of(self)
        async with self.send_lock:
            try:
                with shutdown.socket_send(timeout) as scope:
                    await self.stream.send_all(event.data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                await self.protocol.handle(Closed())
                return
            if scope.cancelled_caught:
                await trio.aclose_forcefully(self.stream)
                await self.protocol.handle(Closed())

    replace(TCPServer, "protocol_send", bounded_send, NAME)


FIX = Fix(
    name=NAME,
    issue="none found upstream: the trio worker's socket writes are shielded with no deadline",
    written_for="0.18.0",
    replaces=(
        Target(
            "hypercorn.trio.tcp_server",
            "TCPServer.protocol_send",
            "225856426bff7be02990c0badb90f51f801db14ac5db0f3d0c210cafbeb528ab",
        ),
    ),
    apply=apply,
)
