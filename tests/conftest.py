"""Shared fixtures: settings, a real engine pool, Quart's test app, a real Hypercorn server."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trio
from quart_trio import QuartTrio

from tests.support.live import LiveServer, start_live_server
from tts_trio.api.app import create_app
from tts_trio.engines import open_engine
from tts_trio.engines.hardware import detect_device
from tts_trio.engines.pool import EnginePool
from tts_trio.server import hypercorn_fixes
from tts_trio.server.hypercorn_fixes import containment
from tts_trio.settings import Settings

# What `tts-trio serve` and the ASGI entry install before serving; every test server gets them too.
hypercorn_fixes.install()

#: Marks a test that makes connections fail inside Hypercorn on purpose (containment then logs an error).
CONTAINED_FAILURES = "contained_failures"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{CONTAINED_FAILURES}: the test provokes connection failures that containment logs on purpose"
    )


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(autouse=True)
def no_contained_failures(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test during which containment caught a connection's error, unless the test is marked.

    Containment keeps a server alive through a bug, but each error it logs
    still cost a client its connection (and every stream on it): a test
    that triggers one without meaning to has found a bug, even if the
    assertions it makes pass. The handler sits on containment's own logger,
    so it sees the records however logging is configured; it stays until
    the test's other fixtures (the servers) are torn down.
    """
    handler = _Collect()
    logger = containment.log
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
    if handler.records and request.node.get_closest_marker(CONTAINED_FAILURES) is None:
        first = handler.records[0]
        reason = repr(first.exc_info[1]) if first.exc_info else first.getMessage()
        pytest.fail(
            f"containment logged {len(handler.records)} connection failure(s), first: {reason}; "
            f"fix the cause, or mark a test that provokes them on purpose with @pytest.mark.{CONTAINED_FAILURES}",
            pytrace=False,
        )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.load({"voices_path": tmp_path / "voices", "slots": 2, "max_queue_wait": 2.0}, environ={})


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[EnginePool]:
    pool = (await open_engine(settings, detect_device())).pool
    try:
        yield pool
    finally:
        await pool.aclose()


@pytest.fixture
async def test_app(settings: Settings) -> AsyncIterator[QuartTrio]:
    app = create_app(settings)
    async with app.test_app() as running:
        yield running  # type: ignore[misc]


@pytest.fixture
async def live_server(settings: Settings, nursery: trio.Nursery) -> AsyncIterator[LiveServer]:
    server, stop = await start_live_server(nursery, settings)
    try:
        yield server
    finally:
        await stop()
