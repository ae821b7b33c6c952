"""Python's garbage collector on a server with many connections: freeze what start-up made, collect less often.

Measured (Python 3.11, 2 cores, 1,000 open WebSockets pinging once a second
while 20 speech streams run, client on the same machine): the pong
latency's median was 17–60 ms but its p99 430–720 ms, and the slow pings
came in bursts. They were the cyclic collector's full (generation 2)
passes: 240–270 ms each, several a minute, finding almost nothing (0–120
objects) among the ~200,000 objects that start-up and a thousand
connections keep alive. So, once the server is ready:

* ``gc.freeze()`` moves everything alive at that point (modules, the engine
  catalog, compiled patterns: ~80,000 objects) into the permanent
  generation, which no collection scans again;
* :data:`THRESHOLDS` makes young passes about three times rarer and full
  passes about fourteen times rarer (one per ~1,000,000 net allocations
  instead of ~70,000). Young and middle passes stay small, so cycles that die young
  (most of trio's cancellations) are still collected at once; the full
  passes that remain are what a server this size must pay now and then.

With both: p99 84 ms, median 17 ms, on the same run (188 ms and 24 ms in the
full ``make load`` run, where the machine was busier). Cycles that outlive a
full pass's interval wait longer for it; after a connection peak the
server collects at once (:func:`tts_trio.server.memory.trim_after_peaks`),
so what a peak leaves is not kept until the next one. The price, measured
with rounds of 3,000 WebSockets opened at once: the server keeps ~300 MB
after such a round instead of ~240 MB (busier arenas at the peak leave
more behind), while the rounds themselves run faster (pong median 1.1 s
instead of 2.9 s). ``TTS_GC_TUNING=false`` keeps Python's own settings.

A limit: objects frozen at start-up are never scanned again, so an engine
loaded then and later switched away from keeps whatever of it sits in
reference cycles (its Python objects; espeak-ng's workers are closed and
Piper's sessions stay cached by design either way).
"""

from __future__ import annotations

import gc
import logging
from typing import Any

log = logging.getLogger(__name__)

#: ``gc.set_threshold``: 2,000 allocations (minus deallocations) between young passes (Python: 700),
#: 10 young passes per middle one (as Python), and 50 middle passes per full one (Python: 10).
THRESHOLDS = (2_000, 10, 50)


def settle_after_start_up() -> None:
    """Collect once, freeze what is alive, and set :data:`THRESHOLDS` (a later call freezes what lives then)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
    log.debug("garbage collector: %d objects frozen, thresholds %s", gc.get_freeze_count(), gc.get_threshold())


def install(app: Any, enabled: bool) -> None:
    """Settle the collector once ``app`` has started (``TTS_GC_TUNING``); call after ``create_app``.

    A ``before_serving`` hook registered after the app's own runs after them,
    so the engine and everything start-up made are in what is frozen.
    """
    if enabled:

        @app.before_serving  # type: ignore[untyped-decorator]
        async def settle() -> None:
            settle_after_start_up()
