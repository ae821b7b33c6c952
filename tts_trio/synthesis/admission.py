"""Admission: how many streams run at once, and what waits when that is reached.

Every request that synthesizes (REST, SSE, WebSocket generation or context,
OpenAI) first takes a place here. When ``max_streams`` places are taken,
requests wait in a bounded queue (``max_queue`` long) for at most
``max_queue_wait`` seconds; a request that finds the queue full, or waits too
long, is refused with 503 and ``Retry-After`` (a WebSocket gets an
``overloaded`` error message and stays open). Sentences still share the
engine slots fairly once admitted; this bounds memory and sockets, so an
overloaded server answers quickly instead of piling up work it cannot finish.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from typing import Any

import trio

from tts_trio.errors import Overloaded
from tts_trio.synthesis.drain import Shutdown


class Place:
    """One admitted stream; :meth:`release` is idempotent and safe to call from a finalizer."""

    def __init__(self, admission: Admission) -> None:
        self._admission: Admission | None = admission

    def release(self) -> None:
        admission, self._admission = self._admission, None
        if admission is not None:
            admission._limiter.release_on_behalf_of(self)

    def bind(self, owner: Any) -> None:
        """Release when ``owner`` (a response body that may never run) is garbage collected."""
        weakref.finalize(owner, self.release)


class Admission:
    def __init__(self, max_streams: int, max_queue: int, max_wait: float, shutdown: Shutdown | None = None) -> None:
        self._limiter = trio.CapacityLimiter(max_streams)
        self.shutdown = shutdown or Shutdown()
        self.max_queue = max_queue
        self.max_wait = max_wait
        #: Observers for metrics (seconds waited; a refusal).
        self.on_wait: Callable[[float], None] = lambda seconds: None
        self.on_refuse: Callable[[], None] = lambda: None

    @property
    def waiting(self) -> int:
        return int(self._limiter.statistics().tasks_waiting)

    @property
    def running(self) -> int:
        return int(self._limiter.borrowed_tokens)

    def _refuse(self, why: str) -> Overloaded:
        self.on_refuse()
        retry = max(1, math.ceil(min(self.max_wait, 5.0)))
        error = Overloaded(f"the server is busy ({why}); retry in {retry} s", retry_after=retry)
        return error

    async def acquire(self) -> Place:
        """Wait for a place (bounded queue, bounded wait) or raise :class:`Overloaded`.

        Raises :class:`~tts_trio.synthesis.drain.ShuttingDown` once the server drains,
        also for a request that was already waiting.
        """
        self.shutdown.check()
        place = Place(self)
        try:
            self._limiter.acquire_on_behalf_of_nowait(place)
            return place
        except trio.WouldBlock:
            pass
        if self.waiting >= self.max_queue:
            raise self._refuse(f"{self.max_queue} requests are already waiting")
        started = trio.current_time()
        with self.shutdown.wait(), trio.move_on_after(self.max_wait):
            await self._limiter.acquire_on_behalf_of(place)
            self.on_wait(trio.current_time() - started)
            return place
        self.shutdown.check()
        raise self._refuse(f"no stream place came free within {self.max_wait:g} s")
