"""SSML over the real server and engine: breaks are digital silence where they belong, on every route.

A ``<break time="1s"/>`` between two sentences must show in the decoded
audio as at least 0.9 s of samples that are exactly zero, after the first
sentence's speech and before the second's; rate and say-as change how long
the speech is; bad SSML is a 422 naming the element (over WebSocket an
error message, and the socket goes on working).
"""

from __future__ import annotations

import base64
import io
import json
import wave
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from tests.support.live import LiveServer, start_live_server
from tests.support.sse import parse_events
from tts_trio.settings import Settings
from tts_trio.synthesis.params import GenerateParams
from tts_trio.synthesis.pipeline import Silence, Spoken

RATE = 22050
BREAK_TEXT = '<speak>The first sentence is here.<break time="1s"/>And the second one follows.</speak>'
PLAIN_TEXT = "The first sentence is here. And the second one follows."


def client(server: LiveServer) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.base_url, timeout=30)


def samples_of_wav(data: bytes) -> tuple[np.ndarray[Any, Any], int]:
    with wave.open(io.BytesIO(data)) as reader:
        return np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2"), reader.getframerate()


def longest_zero_run(samples: np.ndarray[Any, Any], rate: int, tolerance: int = 0) -> tuple[float, float]:
    """(start, length) in seconds of the longest run of samples that are zero (within ``tolerance``)."""
    quiet = np.abs(samples.astype(np.int32)) <= tolerance
    zero = np.concatenate(([0], quiet.astype(np.int8), [0]))
    edges = np.flatnonzero(np.diff(zero))
    starts, ends = edges[::2], edges[1::2]
    if not len(starts):
        return 0.0, 0.0
    longest = int(np.argmax(ends - starts))
    return starts[longest] / rate, (ends[longest] - starts[longest]) / rate


def assert_break_between_sentences(samples: np.ndarray[Any, Any], rate: int, tolerance: int = 0) -> tuple[float, float]:
    """The break is ≥0.9 s of digital silence with speech before and after it; returns (start, end)."""
    start, length = longest_zero_run(samples, rate, tolerance)
    assert length >= 0.9
    end = start + length
    before, after = samples[: int(start * rate)], samples[int(end * rate) :]
    assert np.count_nonzero(before) > 0.3 * rate, "the first sentence is spoken before the silence"
    assert np.count_nonzero(after) > 0.3 * rate, "the second sentence is spoken after it"
    return start, end


async def test_generate_break_is_silence_at_the_right_place_in_audio_and_timings(live_server: LiveServer) -> None:
    async with client(live_server) as http:
        response = await http.post("/v1/tts/generate", json={"text": BREAK_TEXT, "timestamps": True})
        plain = await http.post("/v1/tts/generate", json={"text": PLAIN_TEXT, "timestamps": True})
    assert response.status_code == 200, response.text
    body = response.json()
    samples, rate = samples_of_wav(base64.b64decode(body["audio"]))
    start, end = assert_break_between_sentences(samples, rate)
    first, second = body["sentences"]
    assert [first["text"], second["text"]] == ["The first sentence is here.", "And the second one follows."]
    # The timings put the second sentence a second later than the first one ends: the silence is in between.
    assert second["start"] == pytest.approx(first["end"] + 1.0, abs=0.002)
    assert start <= first["end"] + 0.01 and end >= second["start"] - 0.01
    assert all(word["start"] >= second["start"] for word in second["words"])
    assert body["duration"] == pytest.approx(plain.json()["duration"] + 1.0, abs=0.01)


async def test_generate_wav_file_and_pcm_carry_the_break(live_server: LiveServer) -> None:
    async with client(live_server) as http:
        wav = await http.post("/v1/tts/generate", json={"text": BREAK_TEXT})
        pcm = await http.post("/v1/tts/generate", json={"text": BREAK_TEXT, "output_format": "pcm"})
    assert wav.status_code == 200 and pcm.status_code == 200
    assert_break_between_sentences(*samples_of_wav(wav.content))
    assert_break_between_sentences(np.frombuffer(pcm.content, dtype="<i2"), RATE)
    assert float(wav.headers["X-Audio-Duration"]) > 2.0


async def test_openai_speech_carries_the_break(live_server: LiveServer) -> None:
    async with client(live_server) as http:
        response = await http.post(
            "/v1/audio/speech", json={"model": "tts-1", "voice": "alloy", "input": BREAK_TEXT, "response_format": "wav"}
        )
    assert response.status_code == 200, response.text
    data = response.content
    # A streamed WAV: open-ended header, then PCM at the rate it says. The route resamples the
    # engine's 22050 Hz to OpenAI's 24 kHz, which leaves the zeros within a couple of LSB (below -80 dBFS).
    rate = int.from_bytes(data[24:28], "little")
    assert rate == 24000
    assert_break_between_sentences(np.frombuffer(data[44:], dtype="<i2"), rate, tolerance=2)


async def test_sse_carries_the_break_and_the_timings(live_server: LiveServer) -> None:
    async with client(live_server) as http:
        response = await http.get("/v1/tts/stream-sse", params={"text": BREAK_TEXT, "output_format": "pcm"})
    assert response.status_code == 200
    events = parse_events(response.text)
    pcm = b"".join(base64.b64decode(data["chunk"]) for name, data in events if name == "audio")
    start, end = assert_break_between_sentences(np.frombuffer(pcm, dtype="<i2"), RATE)
    first, second = [data for name, data in events if name == "timings"]
    assert second["start"] == pytest.approx(first["end"] + 1.0, abs=0.002)
    assert start <= first["end"] + 0.01 and end >= second["start"] - 0.01
    assert [name for name, _ in events[-2:]] == ["metrics", "done"]
    assert "ssml_warnings" not in events[-2][1]


async def generate_over_ws(ws: WebSocketConnection, text: str) -> tuple[bytes, list[dict[str, Any]]]:
    await ws.send_message(json.dumps({"action": "generate", "text": text, "output_format": "pcm"}))
    audio: list[bytes] = []
    messages: list[dict[str, Any]] = []
    while True:
        message = await ws.get_message()
        if isinstance(message, bytes):
            audio.append(message)
            continue
        decoded = json.loads(message)
        messages.append(decoded)
        if decoded["type"] in ("done", "error"):
            return b"".join(audio), messages


async def test_ws_generate_carries_the_break_and_bad_ssml_leaves_the_socket_usable(live_server: LiveServer) -> None:
    async with open_websocket_url(live_server.ws_url) as ws:
        pcm, messages = await generate_over_ws(ws, BREAK_TEXT)
        assert messages[-1]["type"] == "done"
        start, end = assert_break_between_sentences(np.frombuffer(pcm, dtype="<i2"), RATE)
        first, second = [message for message in messages if message["type"] == "timings"]
        assert second["start"] == pytest.approx(first["end"] + 1.0, abs=0.002)
        assert start <= first["end"] + 0.01 and end >= second["start"] - 0.01

        _, messages = await generate_over_ws(ws, "<speak>Hello\n<bogus>there</bogus></speak>")
        assert len(messages) == 1
        error = messages[0]
        assert (error["type"], error["code"], error["element"], error["line"]) == (
            "error",
            "invalid_parameter",
            "bogus",
            2,
        )
        assert "<bogus>" in error["message"] and "line 2" in error["message"]

        pcm, messages = await generate_over_ws(ws, "<speak>Still here.</speak>")
        assert messages[-1]["type"] == "done" and len(pcm) > RATE


async def test_ws_phoneme_warning_is_in_the_metrics(live_server: LiveServer) -> None:
    async with open_websocket_url(live_server.ws_url) as ws:
        # A click (ǃ) has no espeak-ng mnemonic: the word is spoken as written, and the metrics say so.
        _, messages = await generate_over_ws(ws, '<speak>A <phoneme alphabet="ipa" ph="ǃa">tomato</phoneme>.</speak>')
        _, spoken_as_ipa = await generate_over_ws(
            ws, '<speak>A <phoneme alphabet="ipa" ph="təˈmeɪtoʊ">tomato</phoneme>.</speak>'
        )
    metrics = next(message for message in messages if message["type"] == "metrics")
    assert any("cannot speak this IPA" in warning for warning in metrics["data"]["ssml_warnings"])
    metrics = next(message for message in spoken_as_ipa if message["type"] == "metrics")
    assert "ssml_warnings" not in metrics["data"]
    timings = [message for message in spoken_as_ipa if message["type"] == "timings"]
    assert [word["word"] for sentence in timings for word in sentence["words"]][-1] == "tomato"


async def audio_seconds(http: httpx.AsyncClient, text: str) -> float:
    response = await http.post("/v1/tts/generate", json={"text": text})
    assert response.status_code == 200, response.text
    samples, rate = samples_of_wav(response.content)
    return len(samples) / rate


async def test_prosody_x_slow_is_longer_than_plain(live_server: LiveServer) -> None:
    text = "This sentence is spoken at two different speeds."
    async with client(live_server) as http:
        plain = await audio_seconds(http, text)
        slow = await audio_seconds(http, f'<speak><prosody rate="x-slow">{text}</prosody></speak>')
        fast = await audio_seconds(http, f'<speak><prosody rate="x-fast">{text}</prosody></speak>')
    assert slow > plain * 1.4
    assert fast < plain * 0.85


async def test_say_as_characters_is_longer_than_plain(live_server: LiveServer) -> None:
    async with client(live_server) as http:
        plain = await audio_seconds(http, "ABC")
        spelled = await audio_seconds(http, '<speak><say-as interpret-as="characters">ABC</say-as></speak>')
    assert spelled > plain * 1.2


async def test_say_as_cardinal_and_sub_are_spoken(live_server: LiveServer) -> None:
    async with client(live_server) as http:
        response = await http.post(
            "/v1/tts/generate",
            json={
                "text": '<speak>I have <say-as interpret-as="cardinal">21</say-as> '
                '<sub alias="kilograms">kg</sub>.</speak>',
                "timestamps": True,
            },
        )
    assert response.status_code == 200
    assert response.json()["sentences"][0]["text"] == "I have twenty-one kilograms."


@pytest.mark.parametrize(
    ("path", "make_body"),
    [
        ("/v1/tts/generate", lambda text: {"text": text}),
        ("/v1/audio/speech", lambda text: {"model": "tts-1", "voice": "alloy", "input": text}),
    ],
    ids=["generate", "openai"],
)
async def test_bad_ssml_is_a_422_naming_the_element(live_server: LiveServer, path: str, make_body: Any) -> None:
    async with client(live_server) as http:
        response = await http.post(path, json=make_body('<speak>Hi\n\n<break time="soon"/></speak>'))
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_parameter"
    assert "<break>" in error["message"] and "line 3" in error["message"]
    assert error["element"] == "break" and error["line"] == 3


async def test_bad_ssml_over_sse_is_a_422(live_server: LiveServer) -> None:
    async with client(live_server) as http:
        response = await http.get(
            "/v1/tts/stream-sse", params={"text": "<speak><emphasis level='max'>x</emphasis></speak>"}
        )
    assert response.status_code == 422
    assert response.json()["error"]["element"] == "emphasis"


async def test_entity_attacks_are_refused_over_http(live_server: LiveServer) -> None:
    attack = '<speak><!DOCTYPE s [<!ENTITY x SYSTEM "file:///etc/passwd">]>&x;</speak>'
    async with client(live_server) as http:
        response = await http.post("/v1/tts/generate", json={"text": attack})
    assert response.status_code == 422
    assert "root:" not in response.text


async def test_plain_text_that_mentions_speak_is_not_ssml(live_server: LiveServer) -> None:
    text = "Say <speak> aloud & <b>bold</b>."
    async with client(live_server) as http:
        response = await http.post("/v1/tts/generate", json={"text": text, "timestamps": True})
    assert response.status_code == 200
    assert response.json()["sentences"][0]["text"] == text


async def test_the_service_turns_ssml_into_a_script_with_clamped_speeds(live_server: LiveServer) -> None:
    service = live_server.service
    job = service.job(
        GenerateParams(text='<speak>A<break time="250ms"/><prosody rate="x-slow">B</prosody></speak>', speed=0.3)
    )
    assert job.script is not None
    first, pause, slow = job.script
    assert isinstance(first, Spoken) and isinstance(pause, Silence) and isinstance(slow, Spoken)
    assert pause.seconds == 0.25
    assert first.voice_parameters == service.engine.voice_parameters(speed=0.3, temperature=0.7)
    # 0.3 x 0.5 is below the lowest speed a request may ask for: clamped to it.
    assert slow.voice_parameters == service.engine.voice_parameters(speed=0.25, temperature=0.7)
    assert service.job(GenerateParams(text="Plain text.")).script is None


async def test_http_routes_say_in_a_header_what_the_ssml_could_not_do(live_server: LiveServer) -> None:
    text = '<speak>A <phoneme alphabet="ipa" ph="ǃa">tomato</phoneme>.</speak>'
    async with client(live_server) as http:
        generate = await http.post("/v1/tts/generate", json={"text": text})
        speech = await http.post("/v1/audio/speech", json={"model": "tts-1", "input": text, "voice": "alloy"})
        plain = await http.post("/v1/tts/generate", json={"text": "A tomato."})
    for response in (generate, speech):
        assert response.status_code == 200
        assert "phoneme" in response.headers["x-ssml-warnings"]
        assert response.headers["x-ssml-warnings"].isascii()
    assert "x-ssml-warnings" not in plain.headers


async def test_with_ssml_strict_off_bad_ssml_is_spoken_as_text_with_a_warning(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    settings = Settings.load({"voices_path": tmp_path / "voices", "slots": 1}, environ={"TTS_SSML_STRICT": "false"})
    server, stop = await start_live_server(nursery, settings)
    try:
        async with client(server) as http:
            response = await http.post("/v1/tts/generate", json={"text": "<speak>Hello <blink>there</blink>.</speak>"})
        assert response.status_code == 200
        assert "x-ssml-warnings" in response.headers
        samples, rate = samples_of_wav(response.content)
        assert len(samples) / rate > 0.3
    finally:
        await stop()  # type: ignore[misc]


async def test_espeak_ipa_is_only_for_english_voices(live_server: LiveServer) -> None:
    text = '<speak>Ein <phoneme alphabet="ipa" ph="təˈmeɪtoʊ">tomato</phoneme>.</speak>'
    async with client(live_server) as http:
        english = await http.post("/v1/tts/generate", json={"text": text, "voice_id": "en-gb"})
        german = await http.post("/v1/tts/generate", json={"text": text, "voice_id": "de"})
    assert "x-ssml-warnings" not in english.headers
    assert "cannot speak this IPA with this voice" in german.headers["x-ssml-warnings"]
