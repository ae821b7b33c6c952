"""The Deepgram dialect, driven by Deepgram's own ``deepgram-sdk`` and LiveKit's Deepgram plugin."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import httpx
import numpy as np
import pytest
import trio
from deepgram import DeepgramClient
from deepgram.core.api_error import ApiError as DeepgramApiError
from deepgram.environment import DeepgramClientEnvironment
from deepgram.speak.v1.types import SpeakV1Cleared, SpeakV1Flushed, SpeakV1Metadata, SpeakV1Text, SpeakV1Warning
from livekit.plugins import deepgram as livekit_deepgram
from trio_websocket import ConnectionClosed, ConnectionRejected, WebSocketConnection, open_websocket_url

from tests.support.audio_check import decode
from tests.support.engines import PacedEngine, use_engine
from tests.support.live import LiveServer, eventually, start_live_server
from tts_trio.audio.formats import AudioFormat
from tts_trio.engines.pool import EnginePool, PoolPolicy
from tts_trio.settings import Settings

TEXT = "Hello from the Deepgram client. This is the second sentence."


def client_for(server: LiveServer) -> DeepgramClient:
    ws_base = server.base_url.replace("http://", "ws://")
    environment = DeepgramClientEnvironment(
        base=server.base_url, production=ws_base, agent=ws_base, agent_rest=server.base_url
    )
    return DeepgramClient(api_key="not-needed", environment=environment)


def seconds_of_pcm(data: bytes, rate: int) -> float:
    return len(data) / 2 / rate


def assert_speech(pcm: bytes, rate: int, *, at_least: float = 1.0, at_most: float = 10.0) -> None:
    """Plausible length for the text, and not silence."""
    assert len(pcm) % 2 == 0
    assert at_least < seconds_of_pcm(pcm, rate) < at_most
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    assert np.sqrt(np.mean(samples**2)) > 100


def mulaw_to_linear(data: bytes) -> bytes:
    """Decode G.711 mu-law with FFmpeg (PyAV), independent of the server's encoder."""
    import av

    codec = av.CodecContext.create("pcm_mulaw", "r")
    codec.sample_rate = 8000  # type: ignore[attr-defined]
    codec.layout = "mono"  # type: ignore[attr-defined]
    frames = codec.decode(av.Packet(data))  # type: ignore[attr-defined]
    return b"".join(bytes(frame.to_ndarray().astype("<i2").tobytes()) for frame in frames)


async def test_sdk_websocket_speak_flush_close(live_server: LiveServer) -> None:
    def call() -> tuple[list[Any], list[bytes], list[bytes]]:
        messages: list[Any] = []
        first: list[bytes] = []
        second: list[bytes] = []
        with client_for(live_server).speak.v1.connect(
            model="aura-2-thalia-en", encoding="linear16", sample_rate=24000
        ) as socket:
            socket.send_text(SpeakV1Text(type="Speak", text="Hello from the Deepgram client. "))
            socket.send_text(SpeakV1Text(type="Speak", text="This is the second sentence."))
            socket.send_flush()
            target = first
            for message in socket:
                if isinstance(message, bytes):
                    target.append(message)
                    continue
                messages.append(message)
                if isinstance(message, SpeakV1Flushed) and message.sequence_id == 0:
                    target = second
                    socket.send_text(SpeakV1Text(type="Speak", text="And one more after the flush."))
                    socket.send_flush()
                elif isinstance(message, SpeakV1Flushed):
                    socket.send_close()
        return messages, first, second

    messages, first, second = await trio.to_thread.run_sync(call)
    assert isinstance(messages[0], SpeakV1Metadata)
    assert messages[0].model_name == "aura-2-thalia-en"
    flushed = [message for message in messages if isinstance(message, SpeakV1Flushed)]
    assert [message.sequence_id for message in flushed] == [0, 1]
    assert_speech(b"".join(first), 24000, at_least=2.0)
    assert_speech(b"".join(second), 24000)


async def test_sdk_websocket_mulaw_at_8khz(live_server: LiveServer) -> None:
    def call() -> bytes:
        audio = bytearray()
        with client_for(live_server).speak.v1.connect(encoding="mulaw", sample_rate=8000) as socket:
            socket.send_text(SpeakV1Text(type="Speak", text=TEXT))
            socket.send_close()  # Close speaks what is held, then closes
            for message in socket:
                if isinstance(message, bytes):
                    audio += message
        return bytes(audio)

    data = await trio.to_thread.run_sync(call)
    assert 2.0 < len(data) / 8000 < 8.0  # one byte per sample
    assert_speech(mulaw_to_linear(data), 8000, at_least=2.0)


async def test_sdk_rest_generate_wav_linear16(live_server: LiveServer) -> None:
    def call() -> bytes:
        chunks = client_for(live_server).speak.v1.audio.generate(
            text=TEXT, model="aura-2-thalia-en", encoding="linear16", sample_rate=16000
        )
        return b"".join(chunks)

    data = await trio.to_thread.run_sync(call)
    assert data.startswith(b"RIFF")  # Deepgram's default container for linear16
    decoded = decode(data)
    assert decoded.sample_rate == 16000 and decoded.codec == "pcm_s16le"
    assert 2.0 < decoded.seconds < 8.0


@pytest.mark.parametrize(("encoding", "container", "codec"), [("mp3", None, "mp3float"), ("mulaw", "wav", "pcm_mulaw")])
async def test_sdk_rest_generate_other_encodings(
    live_server: LiveServer, encoding: str, container: str | None, codec: str
) -> None:
    def call() -> bytes:
        chunks = client_for(live_server).speak.v1.audio.generate(text=TEXT, encoding=encoding, container=container)
        return b"".join(chunks)

    decoded = decode(await trio.to_thread.run_sync(call))
    assert decoded.codec == codec
    assert 2.0 < decoded.seconds < 8.0


async def test_sdk_rest_errors_are_deepgram_shaped(live_server: LiveServer) -> None:
    def call() -> DeepgramApiError:
        try:
            b"".join(client_for(live_server).speak.v1.audio.generate(text=TEXT, encoding="vorbis"))
        except DeepgramApiError as error:
            return error
        raise AssertionError("the request was accepted")

    error = await trio.to_thread.run_sync(call)
    assert error.status_code is not None and 400 <= error.status_code < 500
    async with httpx.AsyncClient(base_url=live_server.base_url) as http:
        response = await http.post("/v1/speak", params={"encoding": "vorbis"}, json={"text": TEXT})
        assert response.status_code == 422
        body = response.json()
        assert body["err_code"] == "INVALID_PARAMETER" and "encoding" in body["err_msg"] and body["request_id"]
        response = await http.post("/v1/speak", json={"text": "   "})
        assert response.status_code == 422 and response.json()["err_code"] == "EMPTY_TEXT"


async def test_livekit_plugin_synthesize_and_stream(live_server: LiveServer) -> None:
    async def run() -> tuple[int, int]:
        async with aiohttp.ClientSession() as session:
            tts = livekit_deepgram.TTS(
                base_url=live_server.base_url + "/v1/speak",
                api_key="not-needed",
                model="aura-2-andromeda-en",
                sample_rate=24000,
                http_session=session,
            )
            try:
                chunked = 0
                async for event in tts.synthesize(TEXT):
                    chunked += event.frame.samples_per_channel
                streamed = 0
                stream = tts.stream()
                for word in TEXT.split():
                    stream.push_text(word + " ")
                stream.flush()
                stream.end_input()
                async for event in stream:
                    streamed += event.frame.samples_per_channel
                await stream.aclose()
            finally:
                await tts.aclose()
        return chunked, streamed

    chunked, streamed = await trio.to_thread.run_sync(lambda: asyncio.run(run()))
    assert 2.0 < chunked / 24000 < 8.0
    assert 2.0 < streamed / 24000 < 8.0
    async with httpx.AsyncClient(base_url=live_server.base_url) as http:
        metrics = (await http.get("/metrics")).text
    assert 'tts_time_to_first_audio_seconds_count{protocol="deepgram"}' in metrics


# -- our own socket client, for what needs exact control --------------------------
async def next_message(ws: WebSocketConnection) -> str | bytes:
    with trio.fail_after(10):
        return await ws.get_message()


async def next_json(ws: WebSocketConnection) -> dict[str, Any]:
    while True:
        message = await next_message(ws)
        if isinstance(message, str):
            return dict(json.loads(message))


async def test_clear_drops_the_cleared_text_and_nothing_of_it_follows(live_server: LiveServer) -> None:
    # Each chunk of the paced engine carries its sentence's text; 16 kHz PCM passes through unchanged.
    paced = EnginePool("paced", [PacedEngine(chunks=25, interval=0.02)], AudioFormat(16000))
    use_engine(live_server, paced, PoolPolicy(sentence_timeout=5.0, stop_grace=0.2))
    url = live_server.base_url.replace("http://", "ws://") + "/v1/speak?encoding=linear16&sample_rate=16000"
    async with open_websocket_url(url) as ws:
        assert (await next_json(ws))["type"] == "Metadata"
        await ws.send_message(json.dumps({"type": "Speak", "text": "Cleared one here. Cleared two here."}))
        await ws.send_message(json.dumps({"type": "Flush"}))  # sequence 0
        assert isinstance(await next_message(ws), bytes)  # the cleared text is being spoken
        await ws.send_message(json.dumps({"type": "Clear"}))  # sequence 1
        await ws.send_message(json.dumps({"type": "Speak", "text": "After the clear."}))
        await ws.send_message(json.dumps({"type": "Flush"}))  # sequence 2
        before: list[bytes] = []
        after: list[bytes] = []
        answers: list[dict[str, Any]] = []
        while not answers or answers[-1]["type"] != "Flushed":
            message = await next_message(ws)
            if isinstance(message, bytes):
                (after if answers else before).append(message)
            else:
                answers.append(json.loads(message))
        assert answers == [{"type": "Cleared", "sequence_id": 1}, {"type": "Flushed", "sequence_id": 2}]
        assert all(b"Cleared" in frame and b"After" not in frame for frame in before)
        assert after and all(b"After the clear." in frame and b"Cleared" not in frame for frame in after)
        await ws.send_message(json.dumps({"type": "Close"}))
        with pytest.raises(ConnectionClosed) as closed:
            await next_message(ws)
        assert closed.value.reason is not None and closed.value.reason.code == 1000


async def test_bad_messages_get_warnings_and_the_socket_stays_usable(live_server: LiveServer) -> None:
    url = live_server.base_url.replace("http://", "ws://") + "/v1/speak?model=aura-2-thalia-en"
    async with open_websocket_url(url) as ws:
        assert (await next_json(ws))["type"] == "Metadata"
        bad_messages: list[tuple[str | bytes, str]] = [
            ("not json", "INVALID_JSON"),
            (json.dumps({"type": "Sing"}), "UNKNOWN_MESSAGE_TYPE"),
            (json.dumps({"type": "Speak"}), "INVALID_TEXT"),
            (json.dumps(["Speak"]), "INVALID_MESSAGE"),
            (b"\x00\x01", "INVALID_MESSAGE"),
        ]
        for bad, code in bad_messages:
            await ws.send_message(bad)
            answer = await next_json(ws)
            assert answer["type"] == "Warning" and answer["code"] == code and answer["description"]
            assert SpeakV1Warning(**answer).code == code  # the SDK's own type reads it
        await ws.send_message(json.dumps({"type": "Speak", "text": TEXT}))
        await ws.send_message(json.dumps({"type": "Flush"}))
        audio = bytearray()
        while True:
            message = await next_message(ws)
            if isinstance(message, bytes):
                audio += message
            elif json.loads(message)["type"] == "Flushed":
                break
        assert_speech(bytes(audio), 24000, at_least=2.0)


async def test_flush_with_nothing_held_and_clear_with_nothing_running_are_answered(live_server: LiveServer) -> None:
    url = live_server.base_url.replace("http://", "ws://") + "/v1/speak"
    async with open_websocket_url(url) as ws:
        assert (await next_json(ws))["type"] == "Metadata"
        await ws.send_message(json.dumps({"type": "Flush"}))
        assert await next_json(ws) == {"type": "Flushed", "sequence_id": 0}
        await ws.send_message(json.dumps({"type": "Clear"}))
        message = await next_json(ws)
        assert SpeakV1Cleared(**message).sequence_id == 1


async def test_a_bad_query_is_refused_at_the_handshake(live_server: LiveServer) -> None:
    base = live_server.base_url.replace("http://", "ws://") + "/v1/speak"
    for query in ("encoding=mp3", "sample_rate=fast", "encoding=mulaw&sample_rate=24000", "colour=blue"):
        with pytest.raises(ConnectionRejected) as rejected:
            async with open_websocket_url(f"{base}?{query}"):
                pass
        assert rejected.value.status_code == 422


async def test_the_drain_closes_deepgram_sockets_with_going_away(settings: Settings, nursery: trio.Nursery) -> None:
    server, stop = await start_live_server(nursery, settings, graceful_timeout=4.0)
    engine = PacedEngine(chunks=2, interval=0.05)
    use_engine(server, EnginePool("paced", [engine], AudioFormat(16000)))
    url = server.base_url.replace("http://", "ws://") + "/v1/speak?sample_rate=16000"
    long_text = " ".join(f"Sentence number {n} goes on." for n in range(80))
    with trio.fail_after(15):
        async with open_websocket_url(url) as idle, open_websocket_url(url) as busy:
            await busy.send_message(json.dumps({"type": "Speak", "text": long_text}))
            await busy.send_message(json.dumps({"type": "Flush"}))
            while not isinstance(await busy.get_message(), bytes):
                pass  # Metadata, then the first audio
            nursery.start_soon(stop)
            with pytest.raises(ConnectionClosed) as idle_closed:
                while True:
                    await idle.get_message()
            assert idle_closed.value.reason is not None and idle_closed.value.reason.code == 1001
            replies: list[dict[str, Any]] = []
            with pytest.raises(ConnectionClosed) as busy_closed:
                while True:
                    message = await busy.get_message()
                    if isinstance(message, str):
                        replies.append(json.loads(message))
            assert busy_closed.value.reason is not None and busy_closed.value.reason.code == 1001
    assert {"type": "Warning", "code": "SHUTTING_DOWN"}.items() <= replies[0].items()
    assert len(replies) <= 3  # the cut, at most one refusal of the rest and its Flushed; never one per sentence
    await eventually(lambda: engine.active == 0)
