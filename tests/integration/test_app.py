"""The HTTP and WebSocket API through Quart's test app (lifespan runs, no sockets)."""

from __future__ import annotations

import base64
import io
import json
import wave
from typing import Any

import pytest
from quart_trio import QuartTrio

from tests.support.live import PARAGRAPH
from tests.support.sse import parse_events


async def test_health_reports_engine_voices_and_slots(test_app: QuartTrio) -> None:
    response = await test_app.test_client().get("/health")
    assert response.status_code == 200
    body = await response.get_json()
    assert body["status"] == "ok"
    assert body["engine"] == "system"
    assert body["device"] == "cpu"
    assert body["voices"] > 50
    assert body["slots"] == {"total": 2, "in_use": 0, "waiting": 0}
    assert body["audio"]["sample_rate"] == 22050


async def test_generate_returns_a_complete_wav(test_app: QuartTrio) -> None:
    response = await test_app.test_client().post("/v1/tts/generate", json={"text": PARAGRAPH})
    assert response.status_code == 200
    assert response.mimetype == "audio/wav"
    data = await response.get_data(as_text=False)
    with wave.open(io.BytesIO(data)) as reader:
        assert (reader.getframerate(), reader.getsampwidth(), reader.getnchannels()) == (22050, 2, 1)
        frames = reader.getnframes()
        assert len(data) == 44 + frames * 2
    duration = frames / 22050
    assert 20 < duration < 60  # ten sentences
    assert float(response.headers["X-Audio-Duration"]) == pytest.approx(duration, abs=0.01)


async def test_generate_pcm_is_bare_samples(test_app: QuartTrio) -> None:
    response = await test_app.test_client().post("/v1/tts/generate", json={"text": "Hello.", "output_format": "pcm"})
    data = await response.get_data(as_text=False)
    assert response.headers["X-Audio-Sample-Rate"] == "22050"
    assert not data.startswith(b"RIFF")
    assert len(data) % 2 == 0 and len(data) > 1000


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"data": "{not json", "headers": {"Content-Type": "application/json"}}, 400, "invalid_json"),
        ({"data": ""}, 400, "invalid_json"),
        ({"json": {"text": "   "}}, 422, "empty_text"),
        ({"json": {"text": 42}}, 422, "invalid_parameter"),
        ({"json": {"text": "hi", "temperature": -1}}, 422, "invalid_parameter"),
        ({"json": {"text": "hi", "sped": 2}}, 422, "invalid_parameter"),
        ({"json": {"text": "hi", "speed": 9}}, 422, "invalid_parameter"),
        ({"json": {"text": "hi", "output_format": "mp3", "sample_rate": 44000}}, 422, "invalid_parameter"),
        ({"json": {"text": "hi", "voice_id": "en-us+nosuchvariant"}}, 404, "voice_not_found"),
        ({"json": {"text": "hi", "voice_id": "klingon-9"}}, 404, "voice_not_found"),
        ({"json": {"text": "a" * 20_001}}, 413, "text_too_long"),
        ({"json": ["text"]}, 400, "bad_request"),
    ],
)
async def test_generate_rejects_bad_input_with_json_errors(
    test_app: QuartTrio, kwargs: dict[str, Any], status: int, code: str
) -> None:
    response = await test_app.test_client().post("/v1/tts/generate", **kwargs)
    assert response.status_code == status
    body = await response.get_json()
    assert body["error"]["code"] == code
    assert body["error"]["message"]


async def test_body_over_the_limit_is_413(test_app: QuartTrio) -> None:
    huge = json.dumps({"text": "x" * (2 << 20)})
    response = await test_app.test_client().post("/v1/tts/generate", data=huge)
    assert response.status_code == 413
    assert (await response.get_json())["error"]["code"] == "body_too_large"


async def test_unknown_route_and_method_are_json(test_app: QuartTrio) -> None:
    client = test_app.test_client()
    missing = await client.get("/v1/nothing")
    assert missing.status_code == 404
    assert (await missing.get_json())["error"] == {"code": "not_found", "message": "no route GET /v1/nothing"}
    wrong = await client.get("/v1/tts/generate")
    assert wrong.status_code == 405
    assert (await wrong.get_json())["error"]["code"] == "method_not_allowed"


async def test_sse_events_in_order_with_bounded_chunks(test_app: QuartTrio) -> None:
    response = await test_app.test_client().get(
        "/v1/tts/stream-sse", query_string={"text": "One sentence. And another one!", "chunk_size": "1000"}
    )
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    events = parse_events(await response.get_data(as_text=True))
    names = [name for name, _ in events]
    assert names[0] == "format"
    assert names[-2:] == ["metrics", "done"]
    assert set(names[1:-2]) == {"audio", "timings"}
    timings = [data for name, data in events if name == "timings"]
    assert [t["sentence"] for t in timings] == [0, 1]
    assert [t["text"] for t in timings] == ["One sentence.", "And another one!"]
    assert timings[0]["start"] == 0 and timings[0]["end"] == timings[1]["start"] < timings[1]["end"]
    assert [w["word"] for w in timings[1]["words"]] == ["And", "another", "one"]
    # Each sentence's timings follow its audio.
    assert names.index("timings") > names.index("audio")
    chunks = [base64.b64decode(data["chunk"]) for name, data in events if name == "audio"]
    assert [data["index"] for name, data in events if name == "audio"] == list(range(1, len(chunks) + 1))
    assert all(len(chunk) <= 1000 for chunk in chunks)
    metrics = events[-2][1]
    assert metrics["total_bytes"] == sum(map(len, chunks))
    assert metrics["chunk_count"] == len(chunks)
    assert metrics["sentences"] == 2
    assert events[-1][1] == {"status": "complete"}


async def test_sse_bad_query_is_a_json_4xx_before_streaming(test_app: QuartTrio) -> None:
    client = test_app.test_client()
    for query, status in [({"chunk_size": "1"}, 422), ({"text": ""}, 422), ({"text": "hi", "voice_id": "nope"}, 404)]:
        response = await client.get("/v1/tts/stream-sse", query_string=query)
        assert response.status_code == status
        assert response.mimetype == "application/json"


async def test_websocket_generate_ping_and_errors(test_app: QuartTrio) -> None:
    client = test_app.test_client()
    async with client.websocket("/v1/tts/stream") as ws:
        await ws.send("{broken")
        assert json.loads(await ws.receive()) == {
            "type": "error",
            "code": "invalid_json",
            "message": "the message is not valid JSON",
        }
        await ws.send(json.dumps({"action": "ping"}))
        assert json.loads(await ws.receive()) == {"type": "pong"}
        await ws.send(json.dumps({"action": "generate", "text": "Hello there.", "request_id": "r1"}))
        start = json.loads(await ws.receive())
        assert start["type"] == "start" and start["request_id"] == "r1"
        audio = []
        while True:
            message = await ws.receive()
            if isinstance(message, bytes):
                audio.append(message)
                continue
            parsed = json.loads(message)
            if parsed["type"] == "done":
                break
            if parsed["type"] == "timings":
                assert parsed["request_id"] == "r1"
                assert [word["word"] for word in parsed["words"]] == ["Hello", "there"]
                continue
            assert parsed["type"] == "metrics"
            assert parsed["data"]["total_bytes"] == sum(map(len, audio))
        assert audio and all(chunk.startswith(b"RIFF") for chunk in audio)
