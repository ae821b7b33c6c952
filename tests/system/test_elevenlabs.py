"""ElevenLabs' clients against a real server: its SDK (REST, and input streaming over wss), LiveKit's
plugin (REST and multi-context socket), and the sockets' rules with a raw WebSocket client.

The clients are asyncio or blocking code; each runs in a thread, the server in the test's trio loop.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import attrs
import httpx
import numpy as np
import pytest
import trio
import trustme
from elevenlabs.client import ElevenLabs
from elevenlabs.core.api_error import ApiError as ElevenApiError
from hypercorn.trio import serve
from livekit.plugins import elevenlabs  # registers itself, which only the main thread may do
from trio_websocket import ConnectionClosed, HandshakeError, open_websocket_url

from tests.support.audio_check import decode
from tests.support.live import PARAGRAPH, LiveServer
from tts_trio.api.app import create_app
from tts_trio.server.launch import hypercorn_config
from tts_trio.settings import Settings

T = TypeVar("T")

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


# -- WebSockets: stream-input and multi-stream-input ------------------------------------------------

PIECES = ["Hello there, ", "this is streamed ", "text for the socket. ", "It has two sentences."]


def _ws_url(server: LiveServer, path: str, output_format: str = "pcm_16000") -> str:
    base = server.base_url.replace("http://", "ws://")
    return (
        f"{base}/v1/text-to-speech/21m00Tcm4TlvDq8N2WB2/{path}?model_id=eleven_flash_v2_5&output_format={output_format}"
    )


def seconds_of_speech(pcm: bytes, rate: int = 16000) -> float:
    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2")
    assert np.abs(samples.astype(np.int32)).max() > 1000, "the audio is silent"
    return len(samples) / rate


async def _receive_until_final(ws: Any, context_id: str | None = None) -> tuple[bytes, list[dict[str, Any]]]:
    """Audio and every message of one context (all messages when None) up to its final message."""
    audio, messages = b"", []
    with trio.fail_after(30):
        while True:
            message = json.loads(await ws.get_message())
            messages.append(message)
            if context_id is not None and message.get("contextId") != context_id:
                continue
            if message.get("audio"):
                audio += base64.b64decode(message["audio"])
            if message.get("isFinal"):
                return audio, messages


async def test_stream_input_speaks_pieces_then_ends_with_final_and_1000(live_server: LiveServer) -> None:
    async with open_websocket_url(_ws_url(live_server, "stream-input")) as ws:
        await ws.send_message(json.dumps({"text": " ", "voice_settings": {"speed": 1.0}, "xi_api_key": "k"}))
        for piece in PIECES:
            await ws.send_message(json.dumps({"text": piece, "try_trigger_generation": True}))
        await ws.send_message(json.dumps({"text": ""}))
        audio, messages = await _receive_until_final(ws)
        assert messages[-1] == {"isFinal": True}
        aligned = [m["normalizedAlignment"] for m in messages if m.get("normalizedAlignment")]
        assert aligned, "no alignment"
        chars = "".join(char for alignment in aligned for char in alignment["chars"])
        assert "streamed" in chars
        assert all(len(a["chars"]) == len(a["charStartTimesMs"]) == len(a["charDurationsMs"]) for a in aligned)
        with pytest.raises(ConnectionClosed) as closed:
            await ws.get_message()
    assert closed.value.reason is not None and closed.value.reason.code == 1000
    assert seconds_of_speech(audio) > 0.3


async def test_stream_input_end_without_text_is_final_and_1000(live_server: LiveServer) -> None:
    async with open_websocket_url(_ws_url(live_server, "stream-input")) as ws:
        await ws.send_message(json.dumps({"text": " "}))
        await ws.send_message(json.dumps({"text": ""}))
        assert json.loads(await ws.get_message()) == {"isFinal": True}
        with pytest.raises(ConnectionClosed) as closed:
            await ws.get_message()
    assert closed.value.reason is not None and closed.value.reason.code == 1000


async def test_stream_input_ulaw_is_mu_law_at_8khz(live_server: LiveServer) -> None:
    async with open_websocket_url(_ws_url(live_server, "stream-input", "ulaw_8000")) as ws:
        await ws.send_message(json.dumps({"text": " "}))
        await ws.send_message(json.dumps({"text": TEXT + " ", "flush": True}))
        await ws.send_message(json.dumps({"text": ""}))
        audio, _ = await _receive_until_final(ws)
    assert len(audio) / 8000 > 1.0  # one byte a sample
    assert len(set(audio)) > 32


async def test_bad_query_is_refused_before_the_upgrade(live_server: LiveServer) -> None:
    with pytest.raises(HandshakeError):
        async with open_websocket_url(_ws_url(live_server, "multi-stream-input", "wav_1")):
            pass


async def test_multi_stream_two_contexts_interleaved(live_server: LiveServer) -> None:
    async with open_websocket_url(_ws_url(live_server, "multi-stream-input")) as ws:
        for context in ("a", "b"):
            await ws.send_message(json.dumps({"text": " ", "context_id": context, "voice_settings": {}}))
        for piece in PIECES:
            for context in ("a", "b"):
                await ws.send_message(json.dumps({"text": piece, "context_id": context}))
        for context in ("a", "b"):  # LiveKit's end of a turn: flush, then close the context
            await ws.send_message(json.dumps({"text": "", "context_id": context, "flush": True}))
            await ws.send_message(json.dumps({"context_id": context, "close_context": True}))
        audio: dict[str, bytes] = {"a": b"", "b": b""}
        finals: list[str] = []
        with trio.fail_after(30):
            while len(finals) < 2:
                message = json.loads(await ws.get_message())
                context = message["contextId"]
                assert context not in finals, "a message after the context's final"
                if message.get("isFinal"):
                    finals.append(context)
                elif message["audio"]:
                    audio[context] += base64.b64decode(message["audio"])
        await ws.send_message(json.dumps({"close_socket": True}))
        with pytest.raises(ConnectionClosed) as closed:
            await ws.get_message()
    assert closed.value.reason is not None and closed.value.reason.code == 1000
    assert sorted(finals) == ["a", "b"]
    assert seconds_of_speech(audio["a"]) > 1.0
    assert seconds_of_speech(audio["b"]) > 1.0


async def test_close_context_mid_synthesis_stops_it_at_once(live_server: LiveServer) -> None:
    async with open_websocket_url(_ws_url(live_server, "multi-stream-input")) as ws:
        await ws.send_message(json.dumps({"text": PARAGRAPH * 3 + " ", "context_id": "long"}))
        with trio.fail_after(30):
            while not json.loads(await ws.get_message()).get("audio"):
                pass
        await ws.send_message(json.dumps({"context_id": "long", "close_context": True}))
        spoken, _ = await _receive_until_final(ws, "long")
        # The socket still serves: a new context speaks, and nothing more of the closed one comes.
        await ws.send_message(json.dumps({"text": TEXT + " ", "context_id": "next", "flush": True}))
        await ws.send_message(json.dumps({"context_id": "next", "close_context": True}))
        audio, messages = await _receive_until_final(ws, "next")
    assert all(message.get("contextId") == "next" for message in messages)
    assert seconds_of_speech(audio) > 1.0
    assert len(spoken) / 32000 < 30, "the closed context went on speaking"  # all of it is over 60 s


async def test_bad_messages_are_errors_and_the_socket_stays(live_server: LiveServer) -> None:
    async with open_websocket_url(_ws_url(live_server, "multi-stream-input")) as ws:
        await ws.send_message("{not json")
        error = json.loads(await ws.get_message())
        assert error["error"] == "invalid_json"
        assert error["message"]
        await ws.send_message(json.dumps({"text": "Hi.", "context_id": "x", "speed_please": 2}))
        error = json.loads(await ws.get_message())
        assert error["error"] == "invalid_parameter"
        assert "speed_please" in error["message"]
        await ws.send_message(json.dumps({"text": "Hi.", "context_id": "x", "voice_settings": {"speed": "fast"}}))
        error = json.loads(await ws.get_message())
        assert error == {**error, "error": "invalid_parameter", "contextId": "x"}
        await ws.send_message(json.dumps({"text": TEXT + " ", "context_id": "x", "flush": True}))
        await ws.send_message(json.dumps({"context_id": "x", "close_context": True}))
        audio, _ = await _receive_until_final(ws, "x")
    assert seconds_of_speech(audio) > 1.0


# -- ElevenLabs' SDK over wss (it always derives wss:// from its base URL) -------------------------


@pytest.fixture
async def tls_server(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[LiveServer]:
    """A server on TLS with a certificate for 127.0.0.1 from a fresh CA, which the client's default context trusts."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    certfile, keyfile, cafile = tmp_path / "server.pem", tmp_path / "server.key", tmp_path / "ca.pem"
    for index, pem in enumerate(cert.cert_chain_pems):
        pem.write_to_path(str(certfile), append=index > 0)
    cert.private_key_pem.write_to_path(str(keyfile))
    ca.cert_pem.write_to_path(str(cafile))
    monkeypatch.setenv("SSL_CERT_FILE", str(cafile))  # what ssl.create_default_context() trusts
    settings = attrs.evolve(settings, host="127.0.0.1", port=0, certfile=certfile, keyfile=keyfile)
    config = hypercorn_config(settings)
    config.graceful_timeout = 1.0
    app = create_app(settings)
    shutdown, finished = trio.Event(), trio.Event()
    async with trio.open_nursery() as nursery:

        async def run(task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
            try:
                await serve(app, config, shutdown_trigger=shutdown.wait, task_status=task_status)  # type: ignore[arg-type]
            finally:
                finished.set()

        binds: list[str] = await nursery.start(run)
        assert binds[0].startswith("https://")
        try:
            yield LiveServer(app=app, base_url=binds[0])
        finally:
            shutdown.set()
            with trio.fail_after(20):
                await finished.wait()


async def test_sdk_convert_realtime_over_wss(tls_server: LiveServer) -> None:
    def speak() -> bytes:
        audio = _client(tls_server).text_to_speech.convert_realtime(
            voice_id="21m00Tcm4TlvDq8N2WB2", text=iter(PIECES), model_id="eleven_flash_v2_5", output_format="pcm_16000"
        )
        return b"".join(audio)

    assert seconds_of_speech(await trio.to_thread.run_sync(speak)) > 1.0


# -- LiveKit's plugin ---------------------------------------------------------------------------------


async def test_livekit_plugin_synthesize_and_stream(live_server: LiveServer) -> None:
    async def speak() -> tuple[int, int]:
        async with aiohttp.ClientSession() as session:
            tts = elevenlabs.TTS(
                api_key="test-key", base_url=live_server.base_url + "/v1", encoding="pcm_16000", http_session=session
            )
            whole = [event.frame async for event in tts.synthesize("LiveKit asks for the whole text.")]
            stream = tts.stream()
            for word in ["LiveKit", "streams", "text.", "Word", "by", "word,", "as", "an", "LLM", "writes", "it."]:
                stream.push_text(word + " ")
            stream.flush()
            stream.end_input()
            streamed = [event async for event in stream]
            await stream.aclose()
            await tts.aclose()
        return sum(f.samples_per_channel for f in whole), sum(e.frame.samples_per_channel for e in streamed)

    whole, streamed = await in_asyncio(speak)
    assert 0.3 < whole / 16000 < 10
    assert 1.0 < streamed / 16000 < 15


async def in_asyncio(make: Callable[[], Awaitable[T]]) -> T:
    async def run() -> T:
        return await make()

    return await trio.to_thread.run_sync(lambda: asyncio.run(run()))
