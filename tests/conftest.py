"""Shared fixtures: settings, a real engine pool, Quart's test app, a real Hypercorn server."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trio
from quart_trio import QuartTrio

from tests.support.live import LiveServer, start_live_server
from tts_trio.api import error_handlers
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


#: Marks a test that makes a route fail unexpectedly on purpose (the app then logs an unhandled error, answers 500).
UNHANDLED_ERRORS = "unhandled_errors"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{CONTAINED_FAILURES}: the test provokes connection failures that containment logs on purpose"
    )
    config.addinivalue_line(
        "markers", f"{UNHANDLED_ERRORS}: the test provokes an unhandled error (a 500) in the app on purpose"
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
    _fail_on(handler, request, CONTAINED_FAILURES, "containment logged {n} connection failure(s)")


@pytest.fixture(autouse=True)
def no_unhandled_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test during which the app answered an unexpected exception with a 500, unless the test is marked.

    Every failure a client can cause has its own 4xx; an unhandled error is
    a bug even when the client survives it and the test's assertions pass.
    """
    handler = _Collect()
    logger = error_handlers.log
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
    _fail_on(handler, request, UNHANDLED_ERRORS, "the app logged {n} unhandled error(s)")


def _fail_on(handler: _Collect, request: pytest.FixtureRequest, marker: str, what: str) -> None:
    if handler.records and request.node.get_closest_marker(marker) is None:
        first = handler.records[0]
        reason = repr(first.exc_info[1]) if first.exc_info else first.getMessage()
        pytest.fail(
            f"{what.format(n=len(handler.records))}, first: {reason}; "
            f"fix the cause, or mark a test that provokes them on purpose with @pytest.mark.{marker}",
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
