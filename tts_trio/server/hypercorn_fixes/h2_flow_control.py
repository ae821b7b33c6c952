"""Make HTTP/2 streams honour the client's flow control, as HTTP/1.1 connections do.

A slow reader must slow its own stream: the pipeline's bounded channels
stop synthesis when the socket cannot take more, so memory per stream stays
small and the engine slot goes to someone else. Hypercorn 0.18's HTTP/2
protocol breaks that chain. ``StreamBuffer.pop`` wakes the writer whenever
the piece it popped was small, and with the client's window at zero every
pop is empty, so the writer is always woken and the per-stream buffer grows
without limit: a client that stops reading after the first event made the
server synthesize and hold a whole long text (36 MB for 200 sentences,
measured; WebSocket over HTTP/2 alike).

:func:`install` makes the writer wait until the buffer really drained below
the low-water mark, and closes a stream's buffer when the stream closes
(reset by the client, or its connection gone) so a writer waiting for
window space is released at once instead of when its send times out.
``tests/test_http2.py`` proves both against a real server.

Like :mod:`tts_trio.server.hypercorn_fixes.containment`, this patches the pinned dependency on
purpose, and only the version it was written for.
"""

from __future__ import annotations

import logging
from importlib.metadata import version
from typing import Any

from hypercorn.protocol import h2

log = logging.getLogger(__name__)

PATCHED_VERSION = "0.18.0"
_MARK = "_tts_trio_flow_control"


async def _pop(self: Any, max_length: int) -> bytes:
    length = min(len(self.buffer), max_length)
    data = bytes(self.buffer[:length])
    del self.buffer[:length]
    if len(self.buffer) < h2.BUFFER_LOW_WATER:  # what is left, not what was taken
        await self._paused.set()
    if len(self.buffer) == 0:
        await self._is_empty.set()
    return data


def install() -> None:
    """Patch Hypercorn's HTTP/2 stream buffers once per process (idempotent)."""
    if getattr(h2.StreamBuffer.pop, _MARK, False):
        return
    found = version("hypercorn")
    if found != PATCHED_VERSION:
        log.warning("hypercorn %s: HTTP/2 flow-control fix written for %s not applied", found, PATCHED_VERSION)
        return
    original_close_stream = h2.H2Protocol._close_stream

    async def close_stream(self: Any, stream_id: int) -> None:
        buffer = self.stream_buffers.get(stream_id)
        if buffer is not None:
            await buffer.close()  # release a writer waiting for window space
        await original_close_stream(self, stream_id)

    setattr(_pop, _MARK, True)
    h2.StreamBuffer.pop = _pop  # type: ignore[method-assign]
    h2.H2Protocol._close_stream = close_stream  # type: ignore[method-assign]
