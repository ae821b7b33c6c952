"""Admission: places, the bounded queue, the bounded wait, the drain, and places given back exactly once.

Timing is trio's ``autojump_clock`` (virtual time), except where a worker
thread drops a place's owner: there the clock must not jump while the
thread runs, so those tests use real time and events only.
"""

from __future__ import annotations

import gc
import threading
from typing import Any

import pytest
import trio
import trio.testing

from tts_trio.errors import Overloaded, ShuttingDown
from tts_trio.synthesis.admission import Admission, AdmissionStatistics, Place
from tts_trio.synthesis.drain import Shutdown


class Owner:
    """Stands in for a response body a place is bound to."""


def make(max_streams: int = 1, max_queue: int = 1, max_wait: float = 10.0, **observers: Any) -> Admission:
    return Admission(max_streams, max_queue, max_wait, Shutdown(), **observers)


async def test_admission_admits_at_once_while_places_are_free(autojump_clock: trio.abc.Clock) -> None:
    waits: list[float] = []
    admission = make(max_streams=2, on_wait=waits.append)
    started = trio.current_time()
    first, second = await admission.acquire(), await admission.acquire()
    assert trio.current_time() == started
    assert (admission.running, admission.waiting) == (2, 0)
    assert waits == []  # only a request that had to wait is observed
    first.release()
    second.release()
    assert admission.running == 0


async def test_admission_full_queue_is_refused_at_once_with_retry_after(autojump_clock: trio.abc.Clock) -> None:
    refusals: list[None] = []
    admission = make(max_streams=1, max_queue=1, max_wait=3.0, on_refuse=lambda: refusals.append(None))
    held = await admission.acquire()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(admission.acquire)  # takes the one queue place
        await trio.testing.wait_all_tasks_blocked()
        assert admission.waiting == 1
        started = trio.current_time()
        with pytest.raises(Overloaded) as info:
            await admission.acquire()
        assert trio.current_time() == started
        assert info.value.details["retry_after"] == 3
        assert (info.value.status, info.value.code) == (503, "overloaded")
        assert "1 requests are already waiting" in info.value.message
        assert len(refusals) == 1
        held.release()  # the waiting one gets the place
    assert admission.running == 1


async def test_admission_wait_is_bounded(autojump_clock: trio.abc.Clock) -> None:
    refusals: list[None] = []
    admission = make(max_streams=1, max_queue=4, max_wait=2.5, on_refuse=lambda: refusals.append(None))
    held = await admission.acquire()
    started = trio.current_time()
    with pytest.raises(Overloaded) as info:
        await admission.acquire()
    assert trio.current_time() - started == pytest.approx(2.5)
    assert info.value.details["retry_after"] == 3  # the wait, rounded up, at most 5 s
    assert "within 2.5 s" in info.value.message
    assert len(refusals) == 1
    assert (admission.running, admission.waiting) == (1, 0)
    held.release()


async def test_admission_observes_how_long_an_admitted_request_waited(autojump_clock: trio.abc.Clock) -> None:
    waits: list[float] = []
    admission = make(max_streams=1, max_wait=10.0, on_wait=waits.append)
    held = await admission.acquire()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(admission.acquire)
        await trio.sleep(4)  # virtual time: the waiter has waited 4 s when the place comes free
        held.release()
    assert waits == [pytest.approx(4)]


async def test_admission_shutdown_refuses_waiting_and_new_requests(autojump_clock: trio.abc.Clock) -> None:
    shutdown = Shutdown()
    admission = Admission(1, 4, 60.0, shutdown)
    held = await admission.acquire()
    outcome: list[ShuttingDown] = []

    async def waiter() -> None:
        try:
            await admission.acquire()
        except ShuttingDown as error:
            outcome.append(error)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        started = trio.current_time()
        shutdown.begin(30.0)
    assert trio.current_time() == started  # refused as soon as the drain began, not after its wait
    assert len(outcome) == 1 and outcome[0].details["retry_after"] == 1
    with pytest.raises(ShuttingDown):
        await admission.acquire()
    assert (admission.running, admission.waiting) == (1, 0)  # the running stream keeps its place
    held.release()
    assert admission.running == 0


async def test_admission_release_is_idempotent(autojump_clock: trio.abc.Clock) -> None:
    admission = make(max_streams=2)
    place = await admission.acquire()
    other = await admission.acquire()
    assert not place.released
    place.release()
    place.release()  # a second release must not give back someone else's place
    assert place.released and not other.released
    assert admission.running == 1
    other.release()
    assert admission.running == 0


async def test_admission_bound_place_comes_back_once_when_its_owner_is_collected() -> None:
    admission = make(max_streams=1, max_queue=0)
    place = await admission.acquire()
    owner = Owner()
    place.bind(owner)
    place.release()  # released normally first: the finalizer must not release again
    again = await admission.acquire()
    del owner
    gc.collect()
    await trio.testing.wait_all_tasks_blocked()
    assert admission.running == 1 and not again.released
    again.release()


async def test_admission_finalizer_on_another_thread_releases_on_the_trio_thread() -> None:
    admission = make(max_streams=1, max_queue=1, max_wait=60.0)
    place = await admission.acquire()
    holder = [Owner()]
    place.bind(holder[0])
    trio_thread = threading.get_ident()
    released_on: list[int] = []
    original = place.release

    def release() -> None:
        released_on.append(threading.get_ident())
        original()

    place.release = release  # type: ignore[method-assign]
    async with trio.open_nursery() as nursery:
        admitted: list[Place] = []

        async def waiter() -> None:
            admitted.append(await admission.acquire())

        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        assert admission.waiting == 1
        # The last reference goes away in a worker thread, so the finalizer runs there.
        await trio.to_thread.run_sync(holder.clear)
        # The release was handed to the Trio thread and woke the waiter there.
    assert released_on == [trio_thread]
    assert place.released and len(admitted) == 1
    assert admission.running == 1
    admitted[0].release()


async def test_admission_finalizer_from_a_collection_in_another_thread() -> None:
    admission = make(max_streams=1, max_queue=1, max_wait=60.0)
    place = await admission.acquire()
    owner = Owner()
    owner.cycle = owner  # type: ignore[attr-defined]  # only the cycle collector can free it
    place.bind(owner)
    del owner
    async with trio.open_nursery() as nursery:
        nursery.start_soon(admission.acquire)
        await trio.testing.wait_all_tasks_blocked()
        await trio.to_thread.run_sync(gc.collect)
    assert place.released
    assert (admission.running, admission.waiting) == (1, 0)


async def test_admission_statistics(autojump_clock: trio.abc.Clock) -> None:
    admission = make(max_streams=2, max_queue=3)
    assert admission.statistics() == AdmissionStatistics(max_streams=2, running=0, waiting=0, max_queue=3)
    places = [await admission.acquire(), await admission.acquire()]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(admission.acquire)
        await trio.testing.wait_all_tasks_blocked()
        assert admission.statistics() == AdmissionStatistics(max_streams=2, running=2, waiting=1, max_queue=3)
        places[0].release()
    assert admission.statistics().running == 2 and admission.statistics().waiting == 0
