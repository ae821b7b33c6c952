"""Drop HTTP/2 data that arrives for a stream Hypercorn has already closed, instead of the whole connection.

Hypercorn 0.18 forgets an HTTP/2 stream as soon as its side is done with
it, which can be before the client has finished sending: a WebSocket over
HTTP/2 is forgotten when the client's close frame is handled, yet the
client still ends its half of the stream with an (empty) DATA frame; a
response can also be complete before the request body is. Hypercorn's
handler for incoming DATA then looks the stream up unguarded, raises
``KeyError``, and takes down the connection with every other stream on it
(hypercorn issue #329; :mod:`.containment` keeps it to that connection, but
an SSE stream sharing it with the closed WebSocket is still cut). The
neighbouring END_STREAM handler already ignores a stream it no longer
knows; DATA is the one event that does not.

:func:`apply` wraps ``H2Protocol._handle_events`` and hands it each DATA
event on its own, right after checking the stream is still known (no
await in between, so the stream cannot vanish after the check). Data for
a forgotten stream is acknowledged, so the connection's flow-control
window gets the bytes back, and dropped. Every other event still goes to
Hypercorn's handler, in order, in runs as they arrived.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import h2.events
from hypercorn.protocol.h2 import H2Protocol

from tts_trio.server.hypercorn_fixes.guard import Fix, Target, replace

NAME = "h2_closed_stream_data"


def apply() -> None:
    """Wrap ``H2Protocol._handle_events`` once per process (idempotent)."""
    original: Callable[[Any, list[h2.events.Event]], Awaitable[None]] = H2Protocol._handle_events

    async def handle_events(self: Any, events: list[h2.events.Event]) -> None:
        run: list[h2.events.Event] = []
        for event in events:
            if not isinstance(event, h2.events.DataReceived):
                run.append(event)
                continue
            if run:  # the events before it may close its stream: handle them first
                await original(self, run)
                run = []
            if event.stream_id in self.streams:
                await original(self, [event])
            else:
                self.connection.acknowledge_received_data(event.flow_controlled_length or 0, event.stream_id)
        await original(self, run)  # also sends what the events above left to send, as Hypercorn always does

    replace(H2Protocol, "_handle_events", handle_events, NAME)


FIX = Fix(
    name=NAME,
    issue="hypercorn#329: DATA for an HTTP/2 stream already closed (a WebSocket after its close) raises KeyError",
    written_for="0.18.0",
    replaces=(
        Target(
            "hypercorn.protocol.h2",
            "H2Protocol._handle_events",
            "3378aef0a2348f0def6e0044697ba0623985794f9b186efb5fbaf12733f4feb5",
        ),
    ),
    apply=apply,
)
