"""The trim after peaks: once per peak, only when it is over, and nothing where glibc is missing."""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable

import pytest
import trio
import trio.testing

from tts_trio.server import memory
from tts_trio.server.allocator import find_malloc_trim

MB = 2**20


class Fake:
    """A process whose RSS and connection count the test sets; trims return ``returned`` bytes."""

    def __init__(self, rss: int, returned: int = 0) -> None:
        self.rss = rss
        self.open = 0
        self.returned = returned
        self.trims = 0
        self.calls: list[str] = []

    def trim(self) -> int:
        self.trims += 1
        self.calls.append("trim")
        self.rss -= self.returned
        return 1

    def collect(self) -> int:
        self.calls.append("collect")
        return 0

    def read(self) -> int | None:
        return self.rss


async def run_steps(fake: Fake, steps: list[tuple[int, int]], count: Callable[[], int] | None) -> list[int]:
    """Set (rss MB, open) per interval; the trim count after each."""
    seen: list[int] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            lambda: memory.trim_after_peaks(
                count, interval=1.0, min_growth=32 * MB, trim=fake.trim, rss=fake.read, collect=fake.collect
            )
        )
        await trio.sleep(0.5)
        for rss_mb, open_now in steps:
            fake.rss, fake.open = rss_mb * MB, open_now
            await trio.sleep(1.0)
            seen.append(fake.trims)
        nursery.cancel_scope.cancel()
    return seen


async def test_trims_once_when_the_connections_peak_is_over(autojump_clock: trio.testing.MockClock) -> None:
    fake = Fake(70 * MB, returned=100 * MB)
    steps = [(150, 1000), (220, 3000), (230, 2000), (230, 100), (230, 100), (130, 0), (130, 0), (30, 0)]
    # The 100 still open at the trim are a tail: once they have gone too, one more trim.
    assert await run_steps(fake, steps, lambda: fake.open) == [0, 0, 0, 0, 1, 1, 2, 2]
    # The cycles the peak's connections left are collected first, so their memory can be trimmed too.
    assert fake.calls == ["collect", "trim", "collect", "trim"]


async def test_a_tail_that_outlived_the_trim_is_trimmed_when_it_goes(autojump_clock: trio.testing.MockClock) -> None:
    """500 of 3,000 connections linger past the first trim; their memory comes back when they close."""
    fake = Fake(70 * MB, returned=60 * MB)
    steps = [(250, 3000), (250, 500), (250, 500), (200, 500), (200, 100), (200, 100), (140, 100), (140, 20)]
    assert await run_steps(fake, steps, lambda: fake.open) == [0, 0, 1, 1, 1, 2, 2, 2]


async def test_small_growth_is_left_alone(autojump_clock: trio.testing.MockClock) -> None:
    fake = Fake(70 * MB)
    assert await run_steps(fake, [(90, 300), (95, 0), (95, 0)], lambda: fake.open) == [0, 0, 0]


async def test_a_trim_that_returns_nothing_is_not_repeated(autojump_clock: trio.testing.MockClock) -> None:
    fake = Fake(70 * MB, returned=0)  # pymalloc arenas: malloc_trim cannot return them
    steps = [(200, 3000), (200, 0), (200, 0), (200, 0), (260, 3000), (260, 0), (260, 0)]
    assert await run_steps(fake, steps, lambda: fake.open) == [0, 0, 1, 1, 1, 1, 2]


async def test_waits_until_the_connections_have_stopped_closing(autojump_clock: trio.testing.MockClock) -> None:
    """A trim while a peak's connections are still closing would set the mark too high for the rest."""
    fake = Fake(70 * MB, returned=60 * MB)
    # Below a quarter of the peak from 700 on, but still falling until 100 is seen twice.
    steps = [(250, 3000), (250, 700), (250, 300), (250, 100), (250, 100), (190, 100)]
    assert await run_steps(fake, steps, lambda: fake.open) == [0, 0, 0, 0, 1, 1]


async def test_without_a_count_it_trims_once_rss_stops_rising(autojump_clock: trio.testing.MockClock) -> None:
    fake = Fake(70 * MB, returned=100 * MB)
    assert await run_steps(fake, [(150, 0), (220, 0), (220, 0), (120, 0)], None) == [0, 0, 1, 1]


async def test_returns_at_once_without_malloc_trim(monkeypatch: pytest.MonkeyPatch) -> None:
    class Musl:  # a C library without glibc's malloc_trim
        def __init__(self, name: object) -> None:
            pass

    monkeypatch.setattr(ctypes, "CDLL", Musl)
    assert find_malloc_trim() is None
    with trio.fail_after(1):
        await memory.trim_after_peaks(lambda: 0, interval=1000.0)


async def test_returns_at_once_without_proc() -> None:
    with trio.fail_after(1):
        await memory.trim_after_peaks(None, interval=1000.0, trim=lambda: 1, rss=lambda: None)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc and /proc")
def test_the_real_trim_and_rss_work_here() -> None:
    trim = find_malloc_trim()
    if trim is None:
        pytest.skip("not glibc")
    assert trim() in (0, 1)
    rss = memory.rss_bytes()
    assert rss is not None and rss > MB
