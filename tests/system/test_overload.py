"""Overload: a bounded queue with a bounded wait, then 503 + Retry-After; nothing leaks."""

from __future__ import annotations

import gc
import json
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import cast

import httpx
import pytest
import trio
import trio.testing
from trio_websocket import open_websocket_url

from tests.support.live import PARAGRAPH, LiveServer, eventually, start_live_server
from tts_trio.errors import Overloaded
from tts_trio.settings import Settings
from tts_trio.synthesis.admission import Admission
from tts_trio.synthesis.drain import Shutdown

LONG_TEXT = " ".join([PARAGRAPH] * 30)  # under the 20,000-character limit


@pytest.fixture
async def tight(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[LiveServer]:
    settings = Settings.load(
        {"voices_path": tmp_path, "slots": 1, "max_streams": 1, "max_queue": 1, "max_queue_wait": 0.5}, environ={}
    )
    server, stop = await start_live_server(nursery, settings)
    try:
        yield server
    finally:
        await stop()  # type: ignore[misc]


async def test_busy_server_queues_then_refuses_with_retry_after(tight: LiveServer) -> None:
    admission = tight.service.admission
    async with (
        httpx.AsyncClient(base_url=tight.base_url, timeout=30) as hog,
        httpx.AsyncClient(base_url=tight.base_url, timeout=30) as http,
    ):
        async with hog.stream("GET", "/v1/tts/stream-sse", params={"text": LONG_TEXT}) as stream:
            lines = cast(AsyncGenerator[str, None], stream.aiter_lines())  # kept: a dropped iterator closes the stream
            async for line in lines:
                if line.startswith("event: audio"):
                    break
            assert admission.running == 1
            results: dict[str, httpx.Response] = {}

            async def queued() -> None:
                results["queued"] = await http.post("/v1/tts/generate", json={"text": "Waiting."})

            async with trio.open_nursery() as nursery:
                nursery.start_soon(queued)
                await eventually(lambda: admission.waiting == 1)
                # The queue (one place) is full: refused at once.
                full = await http.post("/v1/tts/generate", json={"text": "No room."})
                assert full.status_code == 503
                assert full.json()["error"]["code"] == "overloaded"
                assert int(full.headers["retry-after"]) >= 1
            # The queued request waited its 0.5 s, then was refused too.
            assert results["queued"].status_code == 503
            # A WebSocket is told, and its socket stays usable.
            async with open_websocket_url(tight.ws_url) as ws:
                await ws.send_message(json.dumps({"action": "generate", "text": "Hello.", "request_id": "w"}))
                reply = json.loads(await ws.get_message())
                assert (reply["type"], reply["code"], reply["request_id"]) == ("error", "overloaded", "w")
                await ws.send_message(json.dumps({"action": "ping"}))
                assert json.loads(await ws.get_message()) == {"type": "pong"}
            await lines.aclose()
        # The hog disconnected: its place comes back, and requests succeed again.
        await eventually(lambda: admission.running == 0)
        assert (await http.post("/v1/tts/generate", json={"text": "Room again."})).status_code == 200
        sse = await http.get("/v1/tts/stream-sse", params={"text": "And streams."})
        assert "event: done" in sse.text
    await eventually(lambda: admission.running == 0 and admission.waiting == 0)


async def test_a_place_bound_to_a_body_that_never_runs_is_released() -> None:
    admission = Admission(1, 0, 0.1, Shutdown())
    place = await admission.acquire()

    async def body() -> AsyncIterator[bytes]:
        yield b""

    generator = body()
    place.bind(generator)
    with pytest.raises(Overloaded):
        await admission.acquire()
    del generator
    gc.collect()
    # The finalizer hands the release to the Trio thread; it has run once every task is idle.
    await trio.testing.wait_all_tasks_blocked()
    assert admission.running == 0
    (await admission.acquire()).release()
