"""The OpenAI-compatible API, driven by the official ``openai`` Python client."""

from __future__ import annotations

import base64
import functools
import json
from typing import Any

import httpx
import openai
import pytest
import trio

from tests.support.audio_check import CODECS, decode
from tests.support.live import LiveServer
from tests.support.sse import parse_events

TEXT = "Hello from the OpenAI client. This is the second sentence."


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
        return response.content, response.response.headers["x-audio-sample-rate"]

    data, rate = await trio.to_thread.run_sync(call)
    assert rate == "24000"
    assert not data.startswith(b"RIFF") and len(data) % 2 == 0
    assert 2.0 < len(data) / 2 / 24000 < 8.0


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

    assert {"tts-1", "tts-1-hd", "gpt-4o-mini-tts", "system"} <= set(await trio.to_thread.run_sync(call))
    async with httpx.AsyncClient(base_url=live_server.base_url) as http:
        voices = (await http.get("/v1/audio/voices")).json()
        assert (await http.get("/v1/models/nonesuch")).status_code == 404
    assert voices["openai_voices"]["alloy"] == "en-us+f3"
    assert {"f3", "m3"} <= set(voices["variants"])
    assert any(voice["id"] == "de" for voice in voices["voices"])
    json.dumps(voices)
