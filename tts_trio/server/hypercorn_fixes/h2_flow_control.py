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
``tests/system/test_http2.py`` proves both against a real server.

Like every fix in this package, it patches the pinned dependency on purpose,
and :mod:`.guard` refuses it on any other Hypercorn than the one it was
written for.
"""

from __future__ import annotations

from typing import Any

from hypercorn.protocol import h2

from tts_trio.server.hypercorn_fixes.guard import Fix, Target, replace

NAME = "h2_flow_control"


def apply() -> None:
    """Patch Hypercorn's HTTP/2 stream buffers once per process (idempotent)."""

    async def pop(self: Any, max_length: int) -> bytes:
        length = min(len(self.buffer), max_length)
        data = bytes(self.buffer[:length])
        del self.buffer[:length]
        if len(self.buffer) < h2.BUFFER_LOW_WATER:  # what is left, not what was taken
            await self._paused.set()
        if len(self.buffer) == 0:
            await self._is_empty.set()
        return data

    original_close_stream = h2.H2Protocol._close_stream

    async def close_stream(self: Any, stream_id: int) -> None:
        buffer = self.stream_buffers.get(stream_id)
        if buffer is not None:
            await buffer.close()  # release a writer waiting for window space
        await original_close_stream(self, stream_id)

    replace(h2.StreamBuffer, "pop", pop, NAME)
    replace(h2.H2Protocol, "_close_stream", close_stream, NAME)


FIX = Fix(
    name=NAME,
    issue="none found upstream: HTTP/2 stream buffers ignore the client's flow-control window",
    written_for="0.18.0",
    replaces=(
        Target(
            "hypercorn.protocol.h2",
            "StreamBuffer.pop",
            "9eb73c8833891346cbd8658fdd2ac29da8336007abab40a711db857f9c7280e6",
        ),
        Target(
            "hypercorn.protocol.h2",
            "H2Protocol._close_stream",
            "a292549791640b651dc636a981d58eb25117578cc09d85929bef25d12fc425ed",
        ),
    ),
    apply=apply,
)
