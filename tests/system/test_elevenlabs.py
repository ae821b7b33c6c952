"""ElevenLabs' own SDK against a real server: REST convert and stream, decoded and checked."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
import trio
from elevenlabs.client import ElevenLabs
from elevenlabs.core.api_error import ApiError as ElevenApiError

from tests.support.audio_check import decode
from tests.support.live import LiveServer

TEXT = "Hello from the ElevenLabs dialect. It speaks with our engine."


def _client(server: LiveServer) -> ElevenLabs:
    return ElevenLabs(api_key="test-key", base_url=server.base_url)


async def test_convert_mp3_with_the_sdk(live_server: LiveServer) -> None:
    def convert() -> bytes:
        audio = _client(live_server).text_to_speech.convert(
            "21m00Tcm4TlvDq8N2WB2", text=TEXT, model_id="eleven_multilingual_v2", output_format="mp3_44100_128"
        )
        return b"".join(audio)

    decoded = decode(await trio.to_thread.run_sync(convert))
    assert decoded.codec == "mp3float"
    assert decoded.sample_rate == 44100
    assert decoded.seconds > 1.0


@pytest.mark.parametrize("rate", [16000, 22050, 24000, 44100])
async def test_stream_pcm_with_the_sdk(live_server: LiveServer, rate: int) -> None:
    def stream() -> bytes:
        return b"".join(_client(live_server).text_to_speech.stream("default", text=TEXT, output_format=f"pcm_{rate}"))

    pcm = np.frombuffer(await trio.to_thread.run_sync(stream), dtype="<i2")
    assert len(pcm) / rate > 1.0
    assert np.abs(pcm).max() > 1000


async def test_ulaw_is_8khz_mu_law(live_server: LiveServer) -> None:
    def stream() -> bytes:
        return b"".join(_client(live_server).text_to_speech.stream("default", text=TEXT, output_format="ulaw_8000"))

    data = await trio.to_thread.run_sync(stream)
    assert len(data) / 8000 > 1.0  # one byte a sample
    assert len(set(data)) > 32  # speech, not one repeated value of silence


async def test_bad_output_format_is_a_422_in_both_shapes(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.base_url) as client:
        response = await client.post(
            "/v1/text-to-speech/default", params={"output_format": "wav_1"}, json={"text": TEXT}
        )
    assert response.status_code == 422
    body = response.json()
    assert body["error"]["code"] == "invalid_parameter"
    assert body["detail"]["status"] == "invalid_parameter"


async def test_empty_text_is_an_sdk_api_error(live_server: LiveServer) -> None:
    def convert() -> None:
        b"".join(_client(live_server).text_to_speech.convert("default", text="   "))

    with pytest.raises(ElevenApiError) as raised:
        await trio.to_thread.run_sync(convert)
    assert raised.value.status_code == 422
