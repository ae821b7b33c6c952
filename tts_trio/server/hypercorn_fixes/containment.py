"""Keep one connection's failure inside that connection.

Hypercorn 0.18's trio worker lets an exception raised while handling one
connection escape into the server's nursery, which ends the whole process:
a WebSocket upgrade request with trailing bytes is enough (hypercorn issue
#225; reproduced in tests/test_hostile_clients.py). Until Hypercorn contains
it, :func:`install` wraps ``TCPServer.run`` (the coroutine that owns one
connection) so that an error there is logged and closes only that
connection; cancellation still propagates as Trio requires.

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

log = logging.getLogger(__name__)

_MARK = "_tts_trio_contained"


def install() -> None:
    """Wrap ``TCPServer.run`` once per process (idempotent)."""
    original: Callable[[Any], Awaitable[None]] = TCPServer.run
    if getattr(original, _MARK, False):
        return

    async def contained_run(self: Any) -> None:
        try:
            await original(self)
        except* trio.Cancelled:
            raise
        except* Exception as group:
            log.error("a connection failed and was closed; the server goes on", exc_info=group)
            with contextlib.suppress(Exception):
                await self.stream.aclose()

    setattr(contained_run, _MARK, True)
    TCPServer.run = contained_run  # type: ignore[method-assign]
