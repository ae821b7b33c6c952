"""Shared fixtures: settings, a real engine pool, Quart's test app, a real Hypercorn server."""

from __future__ import annotations

from collections.abc import AsyncIterator
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
from tts_trio.settings import Settings

# What `tts-trio serve` and the ASGI entry install before serving; every test server gets them too.
hypercorn_fixes.install()


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
