"""Cartesia's clients against the real server: its SDK (WebSocket contexts, bytes, SSE) and LiveKit's plugin.

The SDKs are asyncio code; each test runs its client in a thread with its
own event loop, the server in the test's trio loop.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
import httpx
import numpy as np
import trio
from cartesia import AsyncCartesia
from livekit.plugins import cartesia  # registers itself, which only the main thread may do
from trio_websocket import open_websocket_url

from tests.support.audio_check import decode
from tests.support.engines import PacedEngine, use_engine
from tests.support.live import LiveServer, eventually
from tts_trio.audio.formats import AudioFormat
from tts_trio.engines.pool import EnginePool

T = TypeVar("T")
VOICE: Any = {"mode": "id", "id": "a0e99841-438c-4a64-b679-ae501e7d6091"}  # one of Cartesia's ids: the default voice
RAW_16K: Any = {"container": "raw", "encoding": "pcm_s16le", "sample_rate": 16000}
PIECES = ["Hello there, ", "this is a test ", "of streaming text. ", "It has two sentences."]


async def in_asyncio(make: Callable[[], Awaitable[T]]) -> T:
    async def run() -> T:
        return await make()

    return await trio.to_thread.run_sync(lambda: asyncio.run(run()))


def client(server: LiveServer) -> AsyncCartesia:
    ws_base = server.base_url.replace("http://", "ws://")
    return AsyncCartesia(api_key="unused", base_url=server.base_url, websocket_base_url=ws_base)


def seconds_of_s16(pcm: bytes, rate: int) -> float:
    samples = np.frombuffer(pcm, dtype="<i2")
    assert np.abs(samples.astype(np.int32)).max() > 1000, "the audio is silent"
    return len(samples) / rate


async def test_sdk_context_streams_transcript_pieces_with_timestamps(live_server: LiveServer) -> None:
    async def talk() -> list[Any]:
        async with client(live_server).tts.websocket_connect() as connection:
            context = connection.context(
                model_id="sonic-3", voice=VOICE, output_format=RAW_16K, add_timestamps=True, language="en"
            )
            for piece in PIECES:
                await context.push(piece)
            await context.no_more_inputs()
            return [event async for event in context.receive()]

    events = await in_asyncio(talk)
    assert events[-1].type == "done" and events[-1].status_code == 200
    chunks = [event for event in events if event.type == "chunk"]
    assert chunks and all(chunk.status_code == 206 and not chunk.done for chunk in chunks)
    pcm = b"".join(chunk.audio or b"" for chunk in chunks)
    assert 1.5 < seconds_of_s16(pcm, 16000) < 15
    words = [w for event in events if event.type == "timestamps" for w in event.word_timestamps.words]
    assert words[:2] == ["Hello", "there"] and "sentences" in words
    starts = [s for event in events if event.type == "timestamps" for s in event.word_timestamps.start]
    assert starts == sorted(starts)  # stream times, not per-sentence times
    registry = live_server.service.metrics.registry
    assert registry.get_sample_value("tts_time_to_first_audio_seconds_count", {"protocol": "cartesia"}) == 1


async def test_two_contexts_on_one_socket_each_in_its_own_encoding(live_server: LiveServer) -> None:
    async def talk() -> dict[str, list[Any]]:
        async with client(live_server).tts.websocket_connect() as connection:
            contexts = {
                "f32": connection.context("f32", voice=VOICE, output_format={**RAW_16K, "encoding": "pcm_f32le"}),
                "mulaw": connection.context(
                    "mulaw",
                    voice=VOICE,
                    output_format={"container": "raw", "encoding": "pcm_mulaw", "sample_rate": 8000},
                ),
            }
            for context in contexts.values():
                await context.push("Two contexts speak at once.", continue_=False)

            async def events(name: str) -> list[Any]:
                return [event async for event in contexts[name].receive()]

            f32, mulaw = await asyncio.gather(events("f32"), events("mulaw"))
            return {"f32": f32, "mulaw": mulaw}

    results = await in_asyncio(talk)
    for name, events in results.items():
        assert events[-1].type == "done", name
        assert all(event.context_id == name for event in events)
    f32 = np.frombuffer(b"".join(e.audio for e in results["f32"] if e.type == "chunk"), dtype="<f4")
    assert 0.5 < len(f32) / 16000 < 10 and 0.03 < np.abs(f32).max() <= 1.0
    mulaw = b"".join(e.audio for e in results["mulaw"] if e.type == "chunk")
    assert 0.5 < len(mulaw) / 8000 < 10 and len(set(mulaw)) > 20


async def test_a_cancelled_context_sends_nothing_more_and_the_socket_goes_on(live_server: LiveServer) -> None:
    engine = PacedEngine(chunks=4, interval=0.05)
    use_engine(live_server, EnginePool("paced", [engine], AudioFormat(16000)))
    long_text = " ".join(f"Sentence {n} of many." for n in range(30))

    async def talk() -> tuple[list[Any], list[Any]]:
        async with client(live_server).tts.websocket_connect() as connection:
            base = {"model_id": "sonic-3", "voice": VOICE, "output_format": RAW_16K}
            first: Any = {**base, "context_id": "long", "transcript": long_text, "continue": False}
            await connection.send(first)
            before: list[Any] = []
            async for event in connection:
                before.append(event)
                if event.type == "chunk":
                    break
            await connection.send({"context_id": "long", "cancel": True})
            following: Any = {**base, "context_id": "next", "transcript": "Next one.", "continue": False}
            await connection.send(following)
            after: list[Any] = []
            async for event in connection:
                after.append(event)
                if event.type in ("done", "error") and event.context_id == "next":
                    break
            return before, after

    before, after = await in_asyncio(talk)
    assert before[-1].context_id == "long"
    first_next = next(i for i, event in enumerate(after) if event.context_id == "next")
    assert all(event.context_id == "next" for event in after[first_next:])
    assert not any(event.type == "done" and event.context_id == "long" for event in after)
    assert after[-1].type == "done" and any(event.type == "chunk" for event in after[first_next:])
    await eventually(lambda: engine.active == 0)


async def test_bad_input_gets_an_error_and_the_socket_stays_usable(live_server: LiveServer) -> None:
    url = live_server.base_url.replace("http://", "ws://") + "/tts/websocket?cartesia_version=2025-04-16"
    async with open_websocket_url(url) as ws:
        good = {"context_id": "c", "transcript": "Still here.", "voice": VOICE, "output_format": RAW_16K}
        for bad, field in [
            ({**good, "output_format": {**RAW_16K, "encoding": "pcm_s24le"}}, "encoding"),
            ({**good, "output_format": {**RAW_16K, "container": "mp3"}}, "container"),
            ({**good, "output_format": {**RAW_16K, "sample_rate": 1000}}, "sample_rate"),
            ({**good, "continue": "yes"}, "continue"),
            ({"transcript": "no id"}, "context_id"),
        ]:
            await ws.send_message(json.dumps(bad))
            with trio.fail_after(10):
                error = json.loads(await ws.get_message())
            assert error["type"] == "error" and error["status_code"] == 422, error
            assert error["title"] and field in error["message"], error
        await ws.send_message("not json")
        with trio.fail_after(10):
            error = json.loads(await ws.get_message())
        assert (error["type"], error["status_code"], error["error_code"]) == ("error", 400, "invalid_json")
        await ws.send_message(json.dumps({"context_id": "gone", "cancel": True}))  # no such context: a no-op
        await ws.send_message(json.dumps(good))
        audio = 0
        with trio.fail_after(10):
            while (message := json.loads(await ws.get_message()))["type"] != "done":
                assert message["type"] == "chunk" and message["context_id"] == "c", message
                audio += len(base64.b64decode(message["data"]))
        assert audio > 16000 and message == {"type": "done", "done": True, "status_code": 200, "context_id": "c"}


async def test_sdk_generate_bytes_as_wav_raw_and_mp3(live_server: LiveServer) -> None:
    async def fetch(output_format: Any) -> bytes:
        response = await client(live_server).tts.generate(
            model_id="sonic-3", transcript="Bytes from the REST route.", voice=VOICE, output_format=output_format
        )
        return await response.read()

    wav = await in_asyncio(lambda: fetch({"container": "wav", "encoding": "pcm_s16le", "sample_rate": 22050}))
    decoded = decode(wav)
    assert (decoded.codec, decoded.sample_rate) == ("pcm_s16le", 22050) and 0.5 < decoded.seconds < 10
    raw = await in_asyncio(lambda: fetch({"container": "raw", "encoding": "pcm_alaw", "sample_rate": 8000}))
    assert 0.5 < len(raw) / 8000 < 10 and len(set(raw)) > 20
    mp3 = await in_asyncio(lambda: fetch({"container": "mp3", "sample_rate": 44100, "bit_rate": 128000}))
    assert decode(mp3).codec == "mp3float" and 0.5 < decode(mp3).seconds < 10


async def test_sdk_sse_streams_chunks_then_done(live_server: LiveServer) -> None:
    async def events() -> list[Any]:
        stream = await client(live_server).tts.generate_sse(
            model_id="sonic-3",
            transcript="Server sent events.",
            voice=VOICE,
            output_format=RAW_16K,
            add_timestamps=True,
        )
        return [event async for event in stream]

    received = await in_asyncio(events)
    assert received[-1].type == "done"
    pcm = b"".join(event.audio for event in received if event.type == "chunk")
    assert 0.5 < seconds_of_s16(pcm, 16000) < 10
    assert any(event.type == "timestamps" and "Server" in event.word_timestamps.words for event in received)


async def test_rest_errors_have_cartesia_fields(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.base_url) as http:
        body = {"model_id": "sonic-3", "transcript": "x", "voice": VOICE, "output_format": RAW_16K}
        for bad, status in [
            ({**body, "output_format": {**RAW_16K, "encoding": "flac"}}, 422),
            ({**body, "transcript": "   "}, 422),
            ({**body, "transcript": None}, 422),
            ({**body, "speed": "warp"}, 422),
        ]:
            response = await http.post("/tts/bytes", json=bad)
            assert response.status_code == status, response.text
            error = response.json()
            assert error["status_code"] == status and error["title"] and error["message"]
            assert error["error"]["code"] == error["error_code"]
        sse = await http.post("/tts/sse", json={**body, "output_format": {**RAW_16K, "container": "wav"}})
        assert sse.status_code == 422 and "container" in sse.json()["message"]
        assert (await http.post("/tts/bytes", content=b"{")).json()["error_code"] == "invalid_json"


async def test_livekit_plugin_synthesize_and_stream(live_server: LiveServer) -> None:
    async def speak() -> tuple[int, int, str]:
        async with aiohttp.ClientSession() as session:
            tts = cartesia.TTS(api_key="unused", base_url=live_server.base_url, sample_rate=16000, http_session=session)
            whole = [event.frame async for event in tts.synthesize("LiveKit asks for the whole text.")]
            stream = tts.stream()
            for word in ["LiveKit", "streams", "text.", "Word", "by", "word,", "as", "an", "LLM", "writes", "it."]:
                stream.push_text(word + " ")
            stream.end_input()
            streamed = [event async for event in stream]
            await stream.aclose()
            await tts.aclose()
        samples = sum(frame.samples_per_channel for frame in whole)
        streamed_samples = sum(event.frame.samples_per_channel for event in streamed)
        return samples, streamed_samples, ""

    whole, streamed, _ = await in_asyncio(speak)
    assert 0.5 < whole / 16000 < 10
    assert 1.0 < streamed / 16000 < 15
