"""The phrase cache over the real server and espeak-ng: identical requests, identical answers, from memory."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from tests.support.live import PARAGRAPH, LiveServer, eventually, start_live_server
from tests.support.sse import parse_events
from tts_trio.settings import Settings

#: Fields of a stream's summary that measure time, so differ between any two runs.
TIMING_FIELDS = {"generation_time", "time_to_first_audio"}
TEXT = "The phrase cache answers this. A second sentence follows!"


def cache_of(server: LiveServer) -> Any:
    return server.service.cache


def counted(server: LiveServer, name: str) -> float:
    value = server.service.metrics.registry.get_sample_value(name)
    return 0.0 if value is None else value


@pytest.fixture
async def big_cache_server(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[LiveServer]:
    """A server whose cache takes a long stream (a quarter of 256 MiB is 64 MiB)."""
    settings = Settings.load(
        {"voices_path": tmp_path / "voices", "slots": 2, "max_queue_wait": 2.0, "cache_bytes": 256 << 20}, environ={}
    )
    server, stop = await start_live_server(nursery, settings)
    try:
        yield server
    finally:
        await stop()


async def ws_generate(ws: WebSocketConnection, **request: Any) -> list[str | bytes]:
    """Every message of one generation up to its ``done`` (or ``error``)."""
    await ws.send_message(json.dumps({"action": "generate", **request}))
    messages: list[str | bytes] = []
    while True:
        message = await ws.get_message()
        messages.append(message)
        if isinstance(message, str) and json.loads(message)["type"] in ("done", "error"):
            return messages


def untimed(data: Any) -> Any:
    """``data`` without the fields that measure time (at any depth: a WebSocket's metrics are nested)."""
    if isinstance(data, dict):
        return {key: untimed(value) for key, value in data.items() if key not in TIMING_FIELDS}
    return data


def without_timing(event: tuple[str, Any]) -> tuple[str, Any]:
    return event[0], untimed(event[1])


async def test_the_same_generate_twice_is_answered_from_the_cache_byte_for_byte(live_server: LiveServer) -> None:
    cache = cache_of(live_server)
    assert cache.enabled and cache.max_bytes == 64 << 20  # the default
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=30) as http:
        first = await http.post("/v1/tts/generate", json={"text": TEXT})
        assert (cache.hits, cache.misses, len(cache)) == (0, 1, 1)
        second = await http.post("/v1/tts/generate", json={"text": TEXT})
        assert (cache.hits, cache.misses) == (1, 1)
        assert first.status_code == second.status_code == 200
        assert first.content == second.content and first.content.startswith(b"RIFF")
        assert first.headers["X-Audio-Duration"] == second.headers["X-Audio-Duration"]
        # Another output format is the same PCM encoded otherwise: still a hit.
        pcm = await http.post("/v1/tts/generate", json={"text": TEXT, "output_format": "pcm"})
        assert cache.hits == 2 and pcm.content == first.content[44:]
        # With timestamps: the same JSON (audio, sentences, words).
        stamped = [
            (await http.post("/v1/tts/generate", json={"text": TEXT, "timestamps": True})).json() for _ in range(2)
        ]
        assert cache.hits == 4
        assert stamped[0] == stamped[1]
        sentences = [sentence["text"] for sentence in stamped[0]["sentences"]]
        assert sentences == ["The phrase cache answers this.", "A second sentence follows!"]
    assert live_server.service.pool.statistics().in_use == 0


async def test_the_same_sse_stream_twice_gives_the_same_events(live_server: LiveServer) -> None:
    cache = cache_of(live_server)
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=30) as http:
        params = {"text": TEXT, "chunk_size": "2048"}
        bodies = [(await http.get("/v1/tts/stream-sse", params=params)).text for _ in range(2)]
    assert (cache.hits, cache.misses) == (1, 1)
    fresh, replayed = (parse_events(body) for body in bodies)
    assert [name for name, _ in fresh][-2:] == ["metrics", "done"]
    assert sum(name == "audio" for name, _ in fresh) > 1 and sum(name == "timings" for name, _ in fresh) == 2
    assert [without_timing(event) for event in fresh] == [without_timing(event) for event in replayed]
    metrics = dict(replayed)["metrics"]
    assert metrics["time_to_first_audio"] is not None and metrics["sentences"] == 2


async def test_the_same_websocket_generation_twice_gives_the_same_messages(live_server: LiveServer) -> None:
    cache = cache_of(live_server)
    async with open_websocket_url(live_server.ws_url) as ws:
        fresh = await ws_generate(ws, text=TEXT, request_id="one")
        replayed = await ws_generate(ws, text=TEXT, request_id="one")
    assert (cache.hits, cache.misses) == (1, 1)

    def shape(messages: list[str | bytes]) -> list[Any]:
        return [message if isinstance(message, bytes) else untimed(json.loads(message)) for message in messages]

    assert b"".join(m for m in fresh if isinstance(m, bytes)) == b"".join(m for m in replayed if isinstance(m, bytes))
    kinds = [json.loads(m)["type"] if isinstance(m, str) else "audio" for m in replayed]
    assert kinds == [json.loads(m)["type"] if isinstance(m, str) else "audio" for m in fresh]
    assert kinds[0] == "start" and kinds[-1] == "done" and "audio" in kinds
    assert shape(fresh) == shape(replayed)


async def test_a_stopped_stream_leaves_no_entry(big_cache_server: LiveServer) -> None:
    server = big_cache_server
    cache = cache_of(server)
    long_text = " ".join([PARAGRAPH] * 4)
    async with open_websocket_url(server.ws_url) as ws:
        await ws.send_message(json.dumps({"action": "generate", "text": long_text, "request_id": "long"}))
        assert json.loads(await ws.get_message())["type"] == "start"
        assert isinstance(await ws.get_message(), bytes)
        await ws.send_message(json.dumps({"action": "stop"}))
        while True:
            message = await ws.get_message()
            if isinstance(message, str):
                kind = json.loads(message)["type"]
                assert kind != "done", "the stream ended before the stop; make the text longer"
                if kind == "stopped":
                    break
        await eventually(lambda: server.service.active_streams == 0)
        assert (cache.misses, len(cache)) == (1, 0)
        # The next identical request is synthesized again (a miss), and then kept.
        messages = await ws_generate(ws, text=long_text, request_id="again")
        assert json.loads(messages[-1])["type"] == "done"
    assert (cache.hits, cache.misses, len(cache)) == (0, 2, 1)


async def test_another_speed_or_voice_is_a_miss(live_server: LiveServer) -> None:
    cache = cache_of(live_server)
    voices = [voice for voice in live_server.service.voices if voice not in ("default", "en", "en-us")]
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=30) as http:
        bodies = []
        for request in (
            {"text": TEXT},
            {"text": TEXT, "speed": 1.5},
            {"text": TEXT, "voice_id": voices[0]},
            {"text": TEXT.replace("!", ".")},  # another text, however slightly
        ):
            response = await http.post("/v1/tts/generate", json=request)
            assert response.status_code == 200
            bodies.append(response.content)
    assert (cache.hits, cache.misses, len(cache)) == (0, 4, 4)
    assert bodies[0] != bodies[1] and bodies[0] != bodies[2]


async def test_an_engine_switch_empties_the_cache(live_server: LiveServer) -> None:
    cache = cache_of(live_server)
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=60) as http:
        await http.post("/v1/tts/generate", json={"text": TEXT})
        await http.post("/v1/tts/generate", json={"text": TEXT})
        assert (cache.hits, cache.misses, len(cache)) == (1, 1, 1)
        switched = await http.post("/v1/engines/switch", json={"engine_type": "system", "config": {"slots": 1}})
        assert switched.status_code == 200
        assert len(cache) == 0
        response = await http.post("/v1/tts/generate", json={"text": TEXT})
        assert response.status_code == 200
        assert (cache.hits, cache.misses, len(cache)) == (1, 2, 1)
        # The same engine and config again is a new engine all the same.
        assert (await http.post("/v1/engines/switch", json={"engine_type": "system"})).status_code == 200
        await http.post("/v1/tts/generate", json={"text": TEXT})
        assert (cache.hits, cache.misses) == (1, 3)


async def test_cache_bytes_zero_switches_the_cache_off(tmp_path: Path, nursery: trio.Nursery) -> None:
    settings = Settings.load({"voices_path": tmp_path / "voices", "cache_bytes": 0}, environ={})
    server, stop = await start_live_server(nursery, settings)
    try:
        cache = cache_of(server)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
            bodies = [(await http.post("/v1/tts/generate", json={"text": TEXT})).content for _ in range(3)]
            await http.get("/v1/tts/stream-sse", params={"text": TEXT})
        assert all(body.startswith(b"RIFF") for body in bodies)
        assert not cache.enabled and (cache.hits, cache.misses, len(cache)) == (0, 0, 0)
        assert counted(server, "tts_cache_misses_total") == 0
    finally:
        await stop()


def test_cache_bytes_is_read_from_the_environment_and_validated() -> None:
    assert Settings.load(environ={"TTS_CACHE_BYTES": "1024"}).cache_bytes == 1024
    assert Settings.load(environ={}).cache_bytes == 64 << 20
    from tts_trio.settings import SettingsError

    with pytest.raises(SettingsError, match="TTS_CACHE_BYTES"):
        Settings.load(environ={"TTS_CACHE_BYTES": "-1"})


async def test_the_cache_metrics_move(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=30) as http:
        for _ in range(3):
            await http.post("/v1/tts/generate", json={"text": TEXT})
        exposition = (await http.get("/metrics")).text
    assert counted(live_server, "tts_cache_hits_total") == 2
    assert counted(live_server, "tts_cache_misses_total") == 1
    assert counted(live_server, "tts_cache_entries") == 1
    size = counted(live_server, "tts_cache_bytes")
    assert size == cache_of(live_server).bytes > 10_000
    for name in ("tts_cache_hits_total", "tts_cache_misses_total", "tts_cache_bytes", "tts_cache_entries"):
        assert f"\n{name} " in exposition


async def test_a_hit_takes_no_engine_slot(live_server: LiveServer) -> None:
    service = live_server.service
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=30) as http:
        await http.post("/v1/tts/generate", json={"text": TEXT})
        synthesized = service.metrics.registry.get_sample_value(
            "tts_sentence_synthesis_seconds_count", {"engine": "system"}
        )
        await http.post("/v1/tts/generate", json={"text": TEXT})
        await http.get("/v1/tts/stream-sse", params={"text": TEXT})
    assert service.cache.hits == 2
    # No sentence went through the engine for the hits.
    assert (
        service.metrics.registry.get_sample_value("tts_sentence_synthesis_seconds_count", {"engine": "system"})
        == synthesized
    )
