"""The garbage collector's settings once the server is ready (tts_trio.server.collector)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from tts_trio.server import collector


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.mark.usefixtures("restored_collector")
def test_start_up_objects_are_frozen_and_young_passes_are_rarer() -> None:
    made_at_start_up = Node()
    collector.settle_after_start_up()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold()[0] == collector.THRESHOLDS[0]
    # Frozen: in no generation a collection scans.
    assert not any(each is made_at_start_up for each in gc.get_objects())
    # Settling twice changes nothing more than settling once.
    collector.settle_after_start_up()
    assert gc.get_threshold()[0] == collector.THRESHOLDS[0]


@pytest.mark.usefixtures("restored_collector")
def test_cycles_made_after_start_up_are_still_collected() -> None:
    collector.settle_after_start_up()
    first, second = Node(), Node()
    first.other, second.other = second, first
    gone = weakref.ref(first)
    del first, second
    gc.collect()
    assert gone() is None


@pytest.mark.usefixtures("restored_collector")
async def test_install_settles_once_the_app_has_started_and_only_when_enabled() -> None:
    from quart_trio import QuartTrio

    off, on = QuartTrio("off"), QuartTrio("on")
    collector.install(off, False)
    collector.install(on, True)
    gc.unfreeze()
    async with off.test_app():
        assert gc.get_freeze_count() == 0
    async with on.test_app():
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == collector.THRESHOLDS
