"""Captions over a real server: the cues follow the timings the audio was made with."""

from __future__ import annotations

import base64
import io
import itertools
import json
import re
import wave
from typing import Any

import httpx
from trio_websocket import open_websocket_url

from tests.support.live import PARAGRAPH, LiveServer
from tests.support.sse import parse_events

LONG_TEXT = " ".join([PARAGRAPH] * 16)  # ~9,100 characters
_SRT_TIME = r"(\d{2,}):(\d{2}):(\d{2}),(\d{3})"
_VTT_TIME = r"(\d{2,}):(\d{2}):(\d{2})\.(\d{3})"
_TIMES = re.compile(r"\d{2,}:\d{2}:\d{2}\.\d{3}")


def client(server: LiveServer) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.base_url, timeout=120)


def seconds(hours: str, minutes: str, secs: str, millis: str) -> float:
    return int(hours) * 3600 + int(minutes) * 60 + int(secs) + int(millis) / 1000


def cue_times(document: str, time: str) -> list[tuple[float, float]]:
    pattern = re.compile(rf"^{time} --> {time}$", re.MULTILINE)
    return [(seconds(*match.groups()[:4]), seconds(*match.groups()[4:])) for match in pattern.finditer(document)]


def plain(vtt: str) -> str:
    """A WebVTT document without its times and tags (what stays the same from one synthesis to the next)."""
    return _TIMES.sub("T", re.sub(r"<[^>]*>", "", vtt))


def wav_seconds(payload: bytes) -> float:
    with wave.open(io.BytesIO(payload)) as reader:
        return float(reader.getnframes() / reader.getframerate())


async def test_generate_srt_ends_with_the_audio_on_a_long_text(live_server: LiveServer) -> None:
    assert len(LONG_TEXT) >= 9000
    async with client(live_server) as http:
        response = await http.post("/v1/tts/generate", json={"text": LONG_TEXT, "timestamps": True, "captions": "srt"})
    assert response.status_code == 200
    body = response.json()
    srt = body["captions"]
    duration = wav_seconds(base64.b64decode(body["audio"]))
    times = cue_times(srt, _SRT_TIME)
    assert len(times) >= len(body["sentences"])
    numbers = re.findall(r"^(\d+)\n\d{2}:", srt, re.MULTILINE)
    assert numbers == [str(n) for n in range(1, len(times) + 1)]
    assert abs(times[-1][1] - duration) <= 0.05
    assert abs(times[-1][1] - body["duration"]) <= 0.05
    assert all(start <= end for start, end in times)
    assert all(a[1] <= b[0] + 0.001 for a, b in itertools.pairwise(times))
    for block in srt.strip().split("\n\n"):
        lines = block.split("\n")[2:]
        assert 1 <= len(lines) <= 2
        assert all(len(line) <= 42 for line in lines)


async def test_generate_vtt_has_header_and_word_tags(live_server: LiveServer) -> None:
    async with client(live_server) as http:
        response = await http.post("/v1/tts/generate", json={"text": PARAGRAPH, "captions": "vtt"})
    assert response.status_code == 200
    body = response.json()
    vtt = body["captions"]
    assert vtt.startswith("WEBVTT\n\n")
    assert "<c>" in vtt and re.search(r"<\d{2}:\d{2}:\d{2}\.\d{3}><c>", vtt)
    times = cue_times(vtt, _VTT_TIME)
    assert times and abs(times[-1][1] - wav_seconds(base64.b64decode(body["audio"]))) <= 0.05
    assert body["sentences"] and body["words"]  # captions imply timestamps


async def test_sse_sends_one_captions_event_per_sentence_in_order(live_server: LiveServer) -> None:
    async with client(live_server) as http:
        response = await http.get("/v1/tts/stream-sse", params={"text": PARAGRAPH, "captions": "vtt"})
        assert response.status_code == 200
        events = parse_events(response.text)
        generated = await http.post("/v1/tts/generate", json={"text": PARAGRAPH, "captions": "vtt"})
    names = [name for name, _ in events]
    timings = [data for name, data in events if name == "timings"]
    captions = [data for name, data in events if name == "captions"]
    assert len(captions) == len(timings) == 10
    # Each captions event comes right after its sentence's timings.
    for position, name in enumerate(names):
        if name == "captions":
            assert names[position - 1] == "timings"
    assert [event["sentence"] for event in captions] == [event["sentence"] for event in timings]
    cues = [cue for event in captions for cue in event["cues"]]
    assert [cue["number"] for cue in cues] == list(range(1, len(cues) + 1))
    starts = [cue["start"] for cue in cues]
    assert starts == sorted(starts)
    assert all(cue["start"] <= cue["end"] for cue in cues)
    assert captions[0]["text"].startswith("WEBVTT\n\n")
    assert not any(event["text"].startswith("WEBVTT") for event in captions[1:])
    # The events' texts joined are the document generate returns for the same text
    # (the times may differ by a millisecond from one synthesis to the next).
    joined = "".join(event["text"] for event in captions)
    assert plain(joined) == plain(generated.json()["captions"])
    assert names[-2:] == ["metrics", "done"]


async def test_sse_srt_captions(live_server: LiveServer) -> None:
    async with client(live_server) as http:
        response = await http.get("/v1/tts/stream-sse", params={"text": "Hello there. Goodbye now.", "captions": "srt"})
    captions = [data for name, data in parse_events(response.text) if name == "captions"]
    assert [event["format"] for event in captions] == ["srt", "srt"]
    assert captions[0]["text"].startswith("1\n00:00:00,000 --> ")
    assert captions[1]["text"].startswith("2\n")


async def test_bad_captions_value_is_a_422_naming_the_field(live_server: LiveServer) -> None:
    async with client(live_server) as http:
        answers = [
            await http.post("/v1/tts/generate", json={"text": "Hi.", "timestamps": True, "captions": "ass"}),
            await http.post("/v1/tts/generate", json={"text": "Hi.", "captions": 1}),
            await http.get("/v1/tts/stream-sse", params={"text": "Hi.", "captions": "SRT"}),
            await http.get("/v1/tts/stream-sse", params={"text": "Hi.", "captions": ""}),
        ]
    for response in answers:
        assert response.status_code == 422
        assert response.headers["content-type"].startswith("application/json")
        error = response.json()["error"]
        assert error["code"] == "invalid_parameter"
        assert "captions" in error["message"]


async def test_websocket_timings_carry_captions_for_generations_and_contexts(live_server: LiveServer) -> None:
    async with open_websocket_url(live_server.ws_url) as ws:
        await ws.send_message(
            json.dumps({"action": "generate", "text": PARAGRAPH, "captions": "vtt", "request_id": "g"})
        )
        timings: list[dict[str, Any]] = []
        while True:
            message = await ws.get_message()
            if isinstance(message, str):
                data = json.loads(message)
                if data["type"] == "timings":
                    timings.append(data)
                elif data["type"] == "done":
                    break
        await ws.send_message(
            json.dumps({"action": "append", "context_id": "c", "text": "Hello there. Bye.", "captions": "srt"})
        )
        await ws.send_message(json.dumps({"action": "end", "context_id": "c"}))
        context_timings = []
        while True:
            data = json.loads(await ws.get_message())
            if data["type"] == "timings":
                context_timings.append(data)
            elif data["type"] == "done":
                break
        await ws.send_message(json.dumps({"action": "generate", "text": "x", "captions": "ass", "request_id": "bad"}))
        refused = json.loads(await ws.get_message())
    assert len(timings) == 10 and all(event["captions"]["sentence"] == event["sentence"] for event in timings)
    cues = [cue for event in timings for cue in event["captions"]["cues"]]
    assert [cue["number"] for cue in cues] == list(range(1, len(cues) + 1))
    assert timings[0]["captions"]["text"].startswith("WEBVTT\n\n")
    assert not any(event["captions"]["text"].startswith("WEBVTT") for event in timings[1:])
    assert [event["captions"]["format"] for event in context_timings] == ["srt", "srt"]
    assert context_timings[1]["captions"]["text"].startswith("2\n")
    assert refused["type"] == "error" and refused["field"] == "captions" and refused["request_id"] == "bad"
