"""Graceful shutdown: how in-flight streams end when the server is told to stop.

When SIGTERM arrives Hypercorn stops accepting connections and gives open
ones ``graceful_timeout`` seconds before it cancels them, which would cut a
stream mid-file with no word to the client. :class:`Shutdown` lets the
streams end on their own terms inside that window:

* new streams are refused at once with 503 ``shutting_down`` (a request on a
  kept-alive connection can still arrive), and so are those waiting in the
  admission queue;
* running streams go on, and most finish; one still running shortly before
  the graceful timeout is cancelled (the engine is stopped like on a
  disconnect) and ends with a final ``shutting_down`` error event, so the
  client knows the audio is incomplete and why;
* ``/ready`` answers 503 so a load balancer stops routing here;
* an idle WebSocket is closed with 1001 (going away), a busy one as soon as
  its work has ended.

``tts-trio serve`` starts the drain from its signal handler, and
:mod:`tts_trio.server.hypercorn_fixes.worker_trigger` from Hypercorn's
shutdown trigger when the bare ``hypercorn`` command serves the app.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import trio

from tts_trio.errors import ShuttingDown

#: Streams are cut this long (at most) before the graceful timeout, leaving
#: time for the engine to stop and the final event to reach the client.
#: espeak-ng stops within milliseconds; an engine that needs longer (a GPU
#: model mid-sentence) can push the final event past the timeout.
FINAL_EVENT_MARGIN = 1.0


class Shutdown:
    """The server's drain state, shared by every stream of one app."""

    def __init__(self) -> None:
        self.started = trio.Event()
        self._deadline = math.inf
        #: When Hypercorn cancels what is still open (the end of the graceful timeout).
        self._hard_deadline = math.inf
        self._streams: set[trio.CancelScope] = set()
        self._waits: set[trio.CancelScope] = set()
        self._sends: set[trio.CancelScope] = set()
        #: Observer for metrics: a stream was cut short by the drain.
        self.on_cut: Callable[[], None] = lambda: None

    def begin(self, graceful_timeout: float) -> None:
        """Start draining: streams must end within ``graceful_timeout`` seconds."""
        if self.started.is_set():
            return
        margin = min(FINAL_EVENT_MARGIN, graceful_timeout / 4)
        now = trio.current_time()
        self._deadline = now + max(0.0, graceful_timeout - margin)
        self._hard_deadline = now + graceful_timeout
        self.started.set()
        for scope in self._streams:
            scope.deadline = min(scope.deadline, self._deadline)
        for scope in self._sends:
            scope.deadline = min(scope.deadline, self._hard_deadline)
        for scope in self._waits:
            scope.cancel()

    def check(self) -> None:
        """Raise :class:`ShuttingDown` once draining has begun."""
        if self.started.is_set():
            raise ShuttingDown("the server is shutting down; retry on another instance", retry_after=1)

    @contextmanager
    def stream(self) -> Iterator[trio.CancelScope]:
        """A scope for one stream's synthesis, cancelled at the drain deadline.

        The caller checks ``cancelled_caught`` afterwards to tell the client
        the stream was cut short.
        """
        with _registered(trio.CancelScope(deadline=self._deadline), self._streams) as scope:
            yield scope

    @contextmanager
    def socket_send(self, timeout: float) -> Iterator[trio.CancelScope]:
        """A shielded scope for one socket write: at most ``timeout`` seconds, and never past the graceful timeout.

        Used by :mod:`tts_trio.server.hypercorn_fixes.socket_sends`; a write to a client that reads
        nothing would otherwise hold the connection, and the shutdown, forever.
        """
        deadline = min(trio.current_time() + timeout, self._hard_deadline)
        with _registered(trio.CancelScope(shield=True, deadline=deadline), self._sends) as scope:
            yield scope

    @contextmanager
    def wait(self) -> Iterator[trio.CancelScope]:
        """A scope for waiting to start, cancelled as soon as draining begins."""
        scope = trio.CancelScope()
        if self.started.is_set():
            scope.cancel()
        with _registered(scope, self._waits):
            yield scope


@contextmanager
def _registered(scope: trio.CancelScope, registry: set[trio.CancelScope]) -> Iterator[trio.CancelScope]:
    """Enter ``scope`` while :meth:`Shutdown.begin` can reach it through ``registry``."""
    registry.add(scope)
    try:
        with scope:
            yield scope
    finally:
        registry.discard(scope)
