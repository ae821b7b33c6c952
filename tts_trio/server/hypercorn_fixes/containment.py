"""Keep one connection's failure inside that connection.

Hypercorn 0.18's trio worker lets an exception raised while handling one
connection escape into the server's nursery, which ends the whole process:
a WebSocket upgrade request with trailing bytes is enough (hypercorn issue
#225; reproduced in tests/system/test_hostile_clients.py). Until Hypercorn contains
it, :func:`install` wraps ``TCPServer.run`` (the coroutine that owns one
connection) so that an error there is logged and closes only that
connection; cancellation still propagates as Trio requires.

Nothing should reach this wrapper in normal operation: each error it logs
is a Hypercorn bug (or one of ours) that cost a client its connection, and
the test suite fails on any such log line it did not provoke on purpose.

This patches a class of a pinned dependency on purpose: the alternative is a
copy of Hypercorn's serve loop. The test suite attacks a real server to prove
the wrapper is in place and works.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from hypercorn.trio.tcp_server import TCPServer

from tts_trio.server.hypercorn_fixes.guard import Fix, Target, replace

log = logging.getLogger(__name__)

NAME = "containment"


def apply() -> None:
    """Wrap ``TCPServer.run`` once per process (idempotent)."""
    original: Callable[[Any], Awaitable[None]] = TCPServer.run

    async def contained_run(self: Any) -> None:
        try:
            await original(self)
        except* trio.Cancelled:
            raise
        except* Exception as group:
            log.error("a connection failed and was closed; the server goes on", exc_info=group)
            with contextlib.suppress(Exception):
                await self.stream.aclose()

    replace(TCPServer, "run", contained_run, NAME)


FIX = Fix(
    name=NAME,
    issue="hypercorn#225: an exception in one connection ends the whole server process",
    written_for="0.18.0",
    replaces=(
        Target(
            "hypercorn.trio.tcp_server",
            "TCPServer.run",
            "fd34b021d1a86c9859514de9472306ea47f4a6763732b26b7a5945278ded0e08",
        ),
    ),
    apply=apply,
)
