"""Give memory back to the system after a connection peak: glibc ``malloc_trim(0)`` when the peak is over.

What was measured (Python 3.11, glibc, Hypercorn 0.18 trio worker, 2 cores;
rounds of 3,000 WebSockets opened at once, one ping each, closed): the
server grows from about 67 MB to 225 MB during a round and, once every
socket has closed and every connection task has ended (``gc`` object
counts back to the idle figure, so nothing is retained), stays at 170 to
195 MB. That is freed-but-not-returned memory, not a leak:

* with Python's default allocator (pymalloc) most of it is 1 MiB pymalloc
  arenas (32 at idle, 126 to 182 after a round, each holding a few
  long-lived objects and many empty pools). pymalloc only unmaps an arena
  that is entirely empty, and ``malloc_trim`` cannot touch those mappings:
  here it returned about 10 MB (182 -> 173 MB), the glibc heap part;
* with ``PYTHONMALLOC=malloc`` every object lives in the glibc heap, which
  stays at its peak (239 MB) until it is trimmed; ``malloc_trim(0)`` then
  returned it (239 -> 81 MB, idle 69 MB).

So the trim pays off fully only together with ``PYTHONMALLOC=malloc``,
which must be in the environment before the interpreter starts:
``tts-trio serve`` sees to that (:mod:`tts_trio.server.allocator`), and it
is a small, harmless win without it. Threads play no part here (two to four
threads, no glibc per-thread arena holds memory), so ``MALLOC_ARENA_MAX``
does not change these figures.

:func:`trim_after_peaks` is one task in the server's nursery. It samples
the process's RSS (and the open connection count, when given) every
``interval`` seconds and trims once the peak is over: the count has fallen
to ``quiet_fraction`` of its highest value since the last trim and has
stopped falling (or, with no count, RSS stopped rising), and either RSS is
at least ``min_growth`` bytes above what it was after the last trim, or
the connections still open at the last trim (at least :data:`MIN_TAIL`)
have fallen to ``quiet_fraction`` of their number. A trim that returns
nothing resets the mark, so an allocator that cannot give memory back is not trimmed
again until RSS grows further. Where glibc or its ``malloc_trim`` is
missing (musl, macOS) the task returns at once.
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Callable
from pathlib import Path

import trio

from tts_trio.server.allocator import find_malloc_trim

log = logging.getLogger(__name__)

#: Connections left open at a trim that count as a tail: their going is worth one more trim.
MIN_TAIL = 64
#: A peak is over once its count falls by less than this fraction of the peak in one interval.
SETTLED_FRACTION = 0.01

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes(statm: Path = Path("/proc/self/statm")) -> int | None:
    """This process's resident set size, or None where ``/proc`` is missing."""
    try:
        return int(statm.read_text().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return None


async def trim_after_peaks(
    open_count: Callable[[], int] | None = None,
    *,
    interval: float = 1.0,
    min_growth: int = 32 * 1024 * 1024,
    quiet_fraction: float = 0.25,
    trim: Callable[[], int] | None = None,
    rss: Callable[[], int | None] = rss_bytes,
    collect: Callable[[], int] = gc.collect,
) -> None:
    """Call ``malloc_trim(0)`` each time a peak of connections (or of RSS) is over; runs until cancelled.

    ``open_count`` gives the connections open now (e.g. the connection
    cap's ``open``); ``trim``, ``rss`` and ``collect`` are there for tests.
    Returns at once where there is no ``malloc_trim`` or no RSS reading.

    Each trim is preceded by a full garbage collection: the server collects
    its oldest generation rarely (:mod:`tts_trio.server.collector`), and an
    idle server allocates nothing that would trigger one, so the reference
    cycles the peak's connections left (cancellations, their tracebacks and
    frames) would otherwise stay, and keep their arenas, until the next peak.
    The pass takes a few hundred milliseconds after a big peak, at the one
    moment nobody is waiting on the server.
    """
    trim = trim or find_malloc_trim()
    baseline = rss()
    if trim is None or baseline is None:
        log.debug("malloc_trim or /proc missing: memory is not trimmed after peaks")
        return
    peak_count = previous_count = open_count() if open_count is not None else 0
    trimmed_at = 0  # connections still open at the last trim
    previous = baseline
    while True:
        await trio.sleep(interval)
        now = rss()
        if now is None:
            return
        if open_count is not None:
            count = open_count()
            peak_count = max(peak_count, count)
            # Over, not still ending: thousands of connections take seconds to close, and a trim
            # in the middle of that would set the mark while their memory was still in use.
            falling = previous_count - count > peak_count * SETTLED_FRACTION
            quiet = count <= peak_count * quiet_fraction and not falling
            previous_count = count
            # A tail that outlived the last trim (connections that lingered until a timeout) has
            # gone too: its memory is freed now, though RSS cannot show it before a trim.
            tail_gone = trimmed_at >= MIN_TAIL and count <= trimmed_at * quiet_fraction
        else:
            quiet = now <= previous  # RSS stopped rising
            tail_gone = False
        previous = now
        baseline = min(baseline, now)  # memory that came back by itself lowers the mark
        if not quiet or (now - baseline < min_growth and not tail_gone):
            continue
        collect()
        trim()
        after = rss()
        baseline = after if after is not None else now
        peak_count = trimmed_at = open_count() if open_count is not None else 0
        log.debug("malloc_trim after a peak: RSS %.1f -> %.1f MB", now / 2**20, baseline / 2**20)
