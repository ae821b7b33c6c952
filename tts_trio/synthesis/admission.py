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

import contextlib
import math
import weakref
from collections.abc import Callable
from typing import Any

import attrs
import trio

from tts_trio.errors import Overloaded
from tts_trio.synthesis.drain import Shutdown


class Place:
    """One admitted stream; :meth:`release` is idempotent.

    A place can be bound to a response body that may never run (a client that
    leaves before the body starts): the garbage collector then gives it back.
    Finalizers run on whichever thread happens to drop the last reference or
    to run the collector, and Trio's primitives belong to the Trio thread, so
    the finalizer only *schedules* the release there, through the run's token.
    """

    def __init__(self, admission: Admission) -> None:
        self._admission: Admission | None = admission
        self._finalizer: weakref.finalize[Any, Any] | None = None

    @property
    def released(self) -> bool:
        return self._admission is None

    def release(self) -> None:
        """Give the place back (on the Trio thread); later calls do nothing."""
        admission, self._admission = self._admission, None
        if admission is not None:
            if self._finalizer is not None:
                self._finalizer.detach()
            admission._give_back(self)

    def bind(self, owner: Any) -> None:
        """Release when ``owner`` (a response body that may never run) is garbage collected."""
        token = trio.lowlevel.current_trio_token()
        self._finalizer = weakref.finalize(owner, _release_soon, token, self)


def _release_soon(token: trio.lowlevel.TrioToken, place: Place) -> None:
    """A finalizer, on any thread: hand the release to the Trio thread (nothing to do once the run has ended)."""
    with contextlib.suppress(trio.RunFinishedError):
        token.run_sync_soon(place.release)


@attrs.frozen
class AdmissionStatistics:
    """A snapshot of admission, for ``/health``, metrics and tests."""

    max_streams: int
    running: int
    waiting: int
    max_queue: int


def _ignore_wait(seconds: float) -> None:
    """Default observer: nothing records waits."""


def _ignore_refusal() -> None:
    """Default observer: nothing records refusals."""


class Admission:
    """A place per stream, a bounded queue, a bounded wait; refused with :class:`Overloaded` beyond that.

    ``shutdown`` is required: it is what refuses new and waiting requests once
    the server drains. The observers report to metrics and are fixed here.
    """

    def __init__(
        self,
        max_streams: int,
        max_queue: int,
        max_wait: float,
        shutdown: Shutdown,
        *,
        on_wait: Callable[[float], None] = _ignore_wait,
        on_refuse: Callable[[], None] = _ignore_refusal,
    ) -> None:
        self._limiter = trio.CapacityLimiter(max_streams)
        self.shutdown = shutdown
        self.max_queue = max_queue
        self.max_wait = max_wait
        #: Observers for metrics (seconds waited; a refusal).
        self._on_wait = on_wait
        self._on_refuse = on_refuse

    @property
    def waiting(self) -> int:
        return int(self._limiter.statistics().tasks_waiting)

    @property
    def running(self) -> int:
        return int(self._limiter.borrowed_tokens)

    def statistics(self) -> AdmissionStatistics:
        return AdmissionStatistics(
            max_streams=int(self._limiter.total_tokens),
            running=self.running,
            waiting=self.waiting,
            max_queue=self.max_queue,
        )

    def _give_back(self, place: Place) -> None:
        self._limiter.release_on_behalf_of(place)

    def _refuse(self, why: str) -> Overloaded:
        self._on_refuse()
        retry = max(1, math.ceil(min(self.max_wait, 5.0)))
        return Overloaded(f"the server is busy ({why}); retry in {retry} s", retry_after=retry)

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
            self._on_wait(trio.current_time() - started)
            return place
        self.shutdown.check()
        raise self._refuse(f"no stream place came free within {self.max_wait:g} s")
