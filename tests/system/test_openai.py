"""The OpenAI-compatible API, driven by the official ``openai`` Python client."""

from __future__ import annotations

import base64
import functools
import json
from typing import Any

import httpx
import numpy as np
import openai
import pytest
import trio

from tests.support.audio_check import CODECS, decode
from tests.support.live import LiveServer
from tests.support.sse import parse_events
from tts_trio.api.routes.openai import MODEL_ALIASES, OPENAI_VOICES

TEXT = "Hello from the OpenAI client. This is the second sentence."
PCM_24K = "audio/pcm;rate=24000;channels=1"


def rms(pcm: bytes) -> float:
    """Loudness of s16le samples: speech is in the thousands, digital silence 0."""
    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float64)
    return float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0


def make_client(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="not-needed", max_retries=0)


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac", "wav"])
async def test_openai_client_speech_in_every_format(live_server: LiveServer, fmt: str) -> None:
    def call() -> tuple[bytes, str]:
        response = make_client(live_server).audio.speech.create(
            model="tts-1",
            voice="alloy",
            input=TEXT,
            response_format=fmt,  # type: ignore[arg-type]
        )
        return response.content, response.response.headers["x-audio-sample-rate"]

    data, rate = await trio.to_thread.run_sync(call)
    decoded = decode(data)
    assert decoded.codec == CODECS[fmt]
    assert decoded.sample_rate == int(rate) == (48000 if fmt == "opus" else 24000)
    assert 2.0 < decoded.seconds < 8.0


async def test_openai_client_pcm_is_24khz_s16le(live_server: LiveServer) -> None:
    def call() -> tuple[bytes, str]:
        response = make_client(live_server).audio.speech.create(
            model="gpt-4o-mini-tts", voice="nova", input=TEXT, response_format="pcm", instructions="Speak calmly."
        )
        assert response.response.headers["content-type"] == PCM_24K
        return response.content, response.response.headers["x-audio-sample-rate"]

    data, rate = await trio.to_thread.run_sync(call)
    assert rate == "24000"
    assert not data.startswith(b"RIFF") and len(data) % 2 == 0
    assert 2.0 < len(data) / 2 / 24000 < 8.0
    assert rms(data) > 300


@pytest.mark.parametrize("model", sorted(MODEL_ALIASES))
async def test_openai_client_dated_and_legacy_model_names(live_server: LiveServer, model: str) -> None:
    """Clients pin OpenAI's snapshots (``gpt-4o-mini-tts-2025-12-15``, ``tts-1-1106``); each must speak, not 404."""

    def call() -> tuple[bytes, str]:
        client = make_client(live_server)
        assert client.models.retrieve(model).id == model
        with client.audio.speech.with_streaming_response.create(
            model=model, voice="shimmer", input=TEXT, response_format="pcm"
        ) as response:
            return response.read(), response.headers["content-type"]

    data, content_type = await trio.to_thread.run_sync(call)
    assert content_type == PCM_24K
    assert 2.0 < len(data) / 2 / 24000 < 8.0
    assert rms(data) > 300


async def test_raw_pcm_content_type_carries_the_actual_rate(live_server: LiveServer) -> None:
    """Every raw-PCM response names its rate: a client trusting ``audio/pcm`` would otherwise assume 24 kHz."""
    async with httpx.AsyncClient(base_url=live_server.base_url) as http:
        generated = await http.post(
            "/v1/tts/generate", json={"text": TEXT, "output_format": "pcm", "sample_rate": 16000}
        )
        native = await http.post("/v1/tts/generate", json={"text": TEXT, "output_format": "pcm"})
        openai_pcm = await http.post(
            "/v1/audio/speech", json={"model": "tts-1-hd", "voice": "onyx", "input": TEXT, "response_format": "pcm"}
        )
        sse = await http.post(
            "/v1/audio/speech",
            json={
                "model": "gpt-4o-mini-tts",
                "voice": "ash",
                "input": TEXT,
                "response_format": "pcm",
                "stream_format": "sse",
            },
        )
    assert generated.headers["content-type"] == "audio/pcm;rate=16000;channels=1"
    assert generated.headers["x-audio-sample-rate"] == "16000"
    assert native.headers["content-type"] == "audio/pcm;rate=22050;channels=1"  # espeak-ng's own rate
    assert openai_pcm.headers["content-type"] == PCM_24K
    assert sse.headers["content-type"].startswith("text/event-stream")
    assert sse.headers["x-audio-sample-rate"] == "24000"
    for response, rate in ((generated, 16000), (native, 22050), (openai_pcm, 24000)):
        assert 2.0 < len(response.content) / 2 / rate < 8.0
        assert rms(response.content) > 300
    events = parse_events(sse.text)
    pcm = b"".join(base64.b64decode(data["audio"]) for name, data in events if name == "speech.audio.delta")
    assert 2.0 < len(pcm) / 2 / 24000 < 8.0


async def test_openai_client_streaming_response_arrives_in_pieces(live_server: LiveServer) -> None:
    def call() -> list[bytes]:
        client = make_client(live_server)
        with client.audio.speech.with_streaming_response.create(
            model="tts-1", voice="echo", input=" ".join([TEXT] * 6), response_format="mp3", speed=1.5
        ) as response:
            return list(response.iter_bytes(4096))

    pieces = await trio.to_thread.run_sync(call)
    assert len(pieces) > 3
    assert decode(b"".join(pieces)).codec == "mp3float"


async def test_openai_speed_changes_duration(live_server: LiveServer) -> None:
    def seconds(speed: float) -> float:
        response = make_client(live_server).audio.speech.create(
            model="tts-1", voice="alloy", input=TEXT, response_format="wav", speed=speed
        )
        return decode(response.content).seconds

    normal = await trio.to_thread.run_sync(seconds, 1.0)
    fast = await trio.to_thread.run_sync(seconds, 2.0)
    assert fast < normal * 0.7


async def test_openai_sse_stream_format(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.base_url) as http:
        response = await http.post(
            "/v1/audio/speech",
            json={"model": "gpt-4o-mini-tts", "voice": "coral", "input": TEXT, "stream_format": "sse"},
        )
    events = parse_events(response.text)
    assert {name for name, _ in events[:-1]} == {"speech.audio.delta"}
    assert events[-1][0] == "speech.audio.done"
    assert events[-1][1]["usage"]["input_tokens"] > 0
    audio = b"".join(base64.b64decode(data["audio"]) for name, data in events[:-1])
    assert decode(audio).codec == "mp3float"


async def test_openai_errors_use_openai_names(live_server: LiveServer) -> None:
    def call(**kwargs: Any) -> openai.APIStatusError:
        try:
            make_client(live_server).audio.speech.create(**kwargs)
        except openai.APIStatusError as error:
            return error
        raise AssertionError("no error")

    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"model": "tts-9", "voice": "alloy", "input": "hi"}, 404, "model"),
        ({"model": "tts-1", "voice": "alloy", "input": "  "}, 422, "input"),
        ({"model": "tts-1", "voice": "robot", "input": "hi"}, 404, "voice"),
        ({"model": "tts-1", "voice": "alloy", "input": "hi", "speed": 5.0}, 422, "speed"),
    ]
    for kwargs, status, param in cases:
        error = await trio.to_thread.run_sync(functools.partial(call, **kwargs))
        assert error.status_code == status
        body = error.response.json()["error"]
        assert body["param"] == param
        assert body["type"] == "invalid_request_error"


async def test_models_and_voices_listing(live_server: LiveServer) -> None:
    def call() -> list[str]:
        return [model.id for model in make_client(live_server).models.list()]

    listed = await trio.to_thread.run_sync(call)
    assert {"tts-1", "tts-1-hd", "gpt-4o-mini-tts", "system", *MODEL_ALIASES} <= set(listed)
    async with httpx.AsyncClient(base_url=live_server.base_url) as http:
        voices = (await http.get("/v1/audio/voices")).json()
        audio_models = (await http.get("/v1/audio/models")).json()
        assert (await http.get("/v1/models/nonesuch")).status_code == 404
        assert (await http.get("/v1/models/gpt-4o-mini-tts-2025-12-15")).json()["id"] == "gpt-4o-mini-tts-2025-12-15"
    assert voices["openai_voices"]["alloy"] == "en-us+f3"
    assert {"f3", "m3"} <= set(voices["variants"])
    assert any(voice["id"] == "de" for voice in voices["voices"])
    json.dumps(voices)
    # Open WebUI's shapes: {"models": [{"id"}]} and voices as {"id", "name"}, its default alloy among them.
    assert [model["id"] for model in audio_models["models"]] == listed
    by_id = {voice["id"]: voice for voice in voices["voices"]}
    assert by_id["alloy"]["name"] == "alloy (en-us+f3)"
    assert by_id["alloy"]["kind"] == "openai" and by_id["alloy"]["maps_to"] == "en-us+f3"
    assert by_id["onyx"]["gender"] == "male" and by_id["alloy"]["language"] == "en-us"
    assert set(OPENAI_VOICES) <= set(by_id)
    assert len(by_id) == len(voices["voices"])
