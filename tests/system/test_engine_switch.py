"""Engine listing and hot switching over the real server."""

from __future__ import annotations

import base64
import json
from typing import cast

import httpx
import trio
import trio.lowlevel

from tests.support.engines import PacedEngine, use_engine
from tests.support.live import PARAGRAPH, LiveServer, eventually
from tts_trio.audio.formats import AudioFormat
from tts_trio.engines.espeak import EspeakEngine
from tts_trio.engines.pool import EnginePool
from tts_trio.synthesis.params import GenerateParams

LONG_TEXT = " ".join([PARAGRAPH] * 15)
ORIGINAL_FIELDS = {"loaded", "current", "supported"}


async def test_engines_listing_says_what_runs_here_and_why_not(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.base_url) as http:
        body = (await http.get("/v1/engines")).json()
    engines = {engine["name"]: engine for engine in body["engines"]}
    assert set(engines) >= {
        "system",
        "azure",
        "openai",
        "elevenlabs",
        "coqui",
        "kokoro",
        "edge",
        "gtts",
        "chatterbox",
        "piper",
    }
    assert body["current"] == "system" and body["device"]["kind"] in ("cpu", "cuda", "mps")
    system = engines["system"]
    assert set(system) >= ORIGINAL_FIELDS
    assert (system["supported"], system["loaded"], system["current"]) == (True, True, True)
    assert system["capabilities"]["network"] is False
    for name, engine in engines.items():
        if name not in ("system", "piper"):  # the test install includes the piper extra and a voice
            assert (engine["supported"], engine["loaded"], engine["current"]) == (False, False, False)
            assert 'pip install "realtimetts[' in engine["reason"]
    assert (engines["piper"]["supported"], engines["piper"]["loaded"], engines["piper"]["current"]) == (
        True,
        False,
        False,
    )
    assert "AZURE_SPEECH_KEY" in engines["azure"]["reason"]


async def test_switch_errors_leave_the_engine_serving(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=30) as http:
        cases = [
            ({"engine_type": "klingon"}, 404, "unknown_engine"),
            ({"engine_type": "system", "config": {"colour": "red"}}, 422, "invalid_parameter"),
            ({"engine_type": "system", "config": {"slots": "2"}}, 422, "invalid_parameter"),
            ({"engine_type": "system", "config": {"voice": "klingon"}}, 422, "invalid_parameter"),
            ({"engine_type": "azure"}, 503, "engine_unavailable"),
            ({"engine": "system"}, 422, "invalid_parameter"),
        ]
        for body, status, code in cases:
            response = await http.post("/v1/engines/switch", json=body)
            assert (response.status_code, response.json()["error"]["code"]) == (status, code), body
        assert (await http.get("/health")).json()["engine"] == "system"
        assert (await http.post("/v1/tts/generate", json={"text": "Still speaking."})).status_code == 200


async def test_switch_keeps_running_streams_on_the_old_engine(live_server: LiveServer) -> None:
    old_pool = live_server.service.pool
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=60) as http:
        async with http.stream(
            "GET", "/v1/tts/stream-sse", params={"text": LONG_TEXT, "output_format": "pcm"}
        ) as stream:
            lines = stream.aiter_lines()
            async for line in lines:
                if line.startswith("event: audio"):
                    break
            # Switch while the stream runs: a failed switch first, then a real one.
            assert (await http.post("/v1/engines/switch", json={"engine_type": "gtts"})).status_code == 503
            switched = await http.post(
                "/v1/engines/switch", json={"engine_type": "system", "config": {"voice": "de", "slots": 1}}
            )
            assert switched.status_code == 200
            assert switched.json()["config"] == {"voice": "de", "slots": 1}
            assert live_server.service.pool is not old_pool
            events = [line async for line in lines if line.startswith("event:")]
        assert events[-2:] == ["event: metrics", "event: done"]  # the old engine finished the stream
        # The old engine is shut down once its last stream has ended: its workers are gone.
        await eventually(
            lambda: all(cast(EspeakEngine, engine)._worker is None for engine in old_pool.engines), within=20
        )
        health = (await http.get("/health")).json()
        assert health["slots"]["total"] == 1
        assert live_server.service.resolve_voice("default") == "de"
        response = await http.get("/v1/tts/stream-sse", params={"text": "Neue Stimme.", "output_format": "pcm"})
        chunks = [json.loads(line[5:])["chunk"] for line in response.text.splitlines() if '"chunk"' in line]
        assert chunks and all(base64.b64decode(chunk) for chunk in chunks)
    await trio.lowlevel.checkpoint()


async def test_temperature_reaches_only_engines_that_take_it(live_server: LiveServer) -> None:
    service = live_server.service
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=30) as http:
        engines = {engine["name"]: engine for engine in (await http.get("/v1/engines")).json()["engines"]}
        system = engines["system"]["capabilities"]["temperature"]
        assert (system["used"], system["parameter"]) == (False, None)
        assert system["note"].startswith("ignored: ") and "espeak-ng" in system["note"]
        chatterbox = engines["chatterbox"]["capabilities"]["temperature"]
        assert (chatterbox["used"], chatterbox["parameter"]) == (True, "temperature")
        # espeak-ng gets its rate, never a temperature.
        job = service.job(GenerateParams(text="Hello.", temperature=1.3, speed=1.0))
        assert set(job.voice_parameters) == {"rate"}
        assert (await http.post("/v1/tts/generate", json={"text": "Hello.", "temperature": 1.3})).status_code == 200
        # A test engine in Chatterbox's place receives each request's value with each sentence.
        engine = PacedEngine(chunks=1, interval=0.001)
        use_engine(live_server, EnginePool("chatterbox", [engine], AudioFormat(16000)))
        for temperature in (1.3, 0.2):
            body = {"text": "Warm words. More of them.", "temperature": temperature}
            assert (await http.post("/v1/tts/generate", json=body)).status_code == 200
    assert engine.voice_parameters == [{"temperature": 1.3}] * 2 + [{"temperature": 0.2}] * 2
