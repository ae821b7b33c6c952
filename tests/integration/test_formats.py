"""Output formats on every route, decoded with a real decoder; encoders as units."""

from __future__ import annotations

import base64
import io
import json
import wave

import httpx
import numpy as np
import pytest
from quart_trio import QuartTrio
from trio_websocket import open_websocket_url

from tests.support.audio_check import CODECS, decode
from tests.support.live import LiveServer
from tests.support.sse import parse_events
from tts_trio.audio.encoding import choose_encoding, encode_complete, open_encoder
from tts_trio.audio.formats import AudioFormat
from tts_trio.errors import InvalidParameter

TEXT = "The first sentence is here. And a second one follows it."
SOURCE = AudioFormat(sample_rate=22050)


def tone(seconds: float, rate: int = 22050) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16).tobytes()


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac", "wav"])
def test_streaming_encoder_output_is_one_decodable_stream(fmt: str) -> None:
    choice = choose_encoding(fmt, None, SOURCE)
    encoder = open_encoder(SOURCE, choice)
    pieces = [encoder.encode(tone(0.5)) for _ in range(6)] + [encoder.finish()]
    decoded = decode(b"".join(pieces))
    assert decoded.codec == CODECS[fmt]
    assert decoded.seconds == pytest.approx(3.0, abs=0.1)
    # Only the first piece carries a container header.
    assert sum(piece.startswith((b"RIFF", b"OggS", b"fLaC", b"ID3")) for piece in pieces) <= (
        len([p for p in pieces if p.startswith(b"OggS")]) if fmt == "opus" else 1
    )


def test_resampling_is_continuous_across_chunks() -> None:
    # A tone resampled in small pieces must equal the same tone resampled in one go:
    # the streaming resampler keeps its state, so there are no clicks at seams.
    choice = choose_encoding("pcm", 24000, SOURCE)
    audio = tone(1.0)
    whole_encoder = open_encoder(SOURCE, choice)
    whole = whole_encoder.encode(audio) + whole_encoder.finish()
    pieces_encoder = open_encoder(SOURCE, choice)
    step = 2 * 1000
    pieces = b"".join(pieces_encoder.encode(audio[i : i + step]) for i in range(0, len(audio), step))
    pieces += pieces_encoder.finish()
    a = np.frombuffer(whole, np.int16).astype(int)
    b = np.frombuffer(pieces, np.int16).astype(int)
    assert abs(len(a) - 24000) < 50
    assert len(a) == len(b)
    assert np.max(np.abs(a - b)) <= 2


def test_complete_wav_at_another_rate_has_exact_header() -> None:
    data = encode_complete(SOURCE, choose_encoding("wav", 16000, SOURCE), tone(1.0))
    with wave.open(io.BytesIO(data)) as reader:
        assert reader.getframerate() == 16000
        assert abs(reader.getnframes() - 16000) < 50


@pytest.mark.parametrize(
    ("fmt", "rate", "message"),
    [("ogg", None, "output_format"), ("opus", 22050, "opus supports"), ("mp3", 96000, "between")],
)
def test_choose_encoding_rejects_impossible_choices(fmt: str, rate: int | None, message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        choose_encoding(fmt, rate, SOURCE)


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac", "wav"])
async def test_generate_in_every_format(test_app: QuartTrio, fmt: str) -> None:
    response = await test_app.test_client().post("/v1/tts/generate", json={"text": TEXT, "output_format": fmt})
    assert response.status_code == 200
    decoded = decode(await response.get_data(as_text=False))
    assert decoded.codec == CODECS[fmt]
    assert decoded.sample_rate == int(response.headers["X-Audio-Sample-Rate"])
    assert decoded.seconds == pytest.approx(float(response.headers["X-Audio-Duration"]), abs=0.15)


async def test_generate_pcm_at_a_chosen_rate(test_app: QuartTrio) -> None:
    client = test_app.test_client()
    base = await client.post("/v1/tts/generate", json={"text": TEXT, "output_format": "pcm"})
    resampled = await client.post("/v1/tts/generate", json={"text": TEXT, "output_format": "pcm", "sample_rate": 16000})
    assert resampled.headers["X-Audio-Sample-Rate"] == "16000"
    seconds = len(await base.get_data()) / 2 / 22050
    assert len(await resampled.get_data()) / 2 / 16000 == pytest.approx(seconds, abs=0.02)


@pytest.mark.parametrize("fmt", ["mp3", "opus", "flac", "aac", "pcm"])
async def test_sse_in_every_format_is_one_continuous_stream(live_server: LiveServer, fmt: str) -> None:
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=30) as http:
        response = await http.get(
            "/v1/tts/stream-sse", params={"text": TEXT, "output_format": fmt, "chunk_size": "2048"}
        )
    events = parse_events(response.text)
    assert events[0][1]["container"] == fmt
    chunks = [base64.b64decode(data["chunk"]) for name, data in events if name == "audio"]
    assert all(len(chunk) <= 2048 for chunk in chunks)
    joined = b"".join(chunks)
    if fmt == "pcm":
        assert len(joined) / 2 / 22050 == pytest.approx(events[-2][1]["audio_duration"], abs=0.01)
    else:
        assert decode(joined).codec == CODECS[fmt]
        assert decode(joined).seconds == pytest.approx(events[-2][1]["audio_duration"], abs=0.15)


async def test_websocket_mp3_is_continuous_across_messages(live_server: LiveServer) -> None:
    async with open_websocket_url(live_server.ws_url) as ws:
        await ws.send_message(
            json.dumps({"action": "generate", "text": TEXT, "output_format": "mp3", "chunk_size": 1000})
        )
        audio = []
        while True:
            message = await ws.get_message()
            if isinstance(message, bytes):
                audio.append(message)
            elif json.loads(message)["type"] == "done":
                break
    assert all(len(piece) <= 1000 for piece in audio)
    assert decode(b"".join(audio)).codec == "mp3float"


async def test_generate_with_timestamps_returns_words_and_sentences(test_app: QuartTrio) -> None:
    response = await test_app.test_client().post("/v1/tts/generate", json={"text": TEXT, "timestamps": True})
    body = await response.get_json()
    audio = base64.b64decode(body["audio"])
    with wave.open(io.BytesIO(audio)) as reader:
        seconds = reader.getnframes() / reader.getframerate()
    assert body["duration"] == pytest.approx(seconds, abs=0.01)
    assert [s["text"] for s in body["sentences"]] == ["The first sentence is here.", "And a second one follows it."]
    words = body["words"]
    expected = ["The", "first", "sentence", "is", "here", "And", "a", "second", "one", "follows", "it"]
    assert [w["word"] for w in words] == expected
    starts = [w["start"] for w in words]
    assert starts == sorted(starts)
    assert body["sentences"][1]["start"] <= words[5]["start"] < body["sentences"][1]["end"] <= seconds + 0.01
