"""End to end: a real Hypercorn server on a loopback port, real clients, the real engine."""

from __future__ import annotations

import base64
import io
import json
import wave
from typing import Any, cast

import httpx
import pytest
import trio
from trio_websocket import open_websocket_url

from tests.support.live import PARAGRAPH, LiveServer, eventually
from tests.support.sse import parse_events
from tts_trio.engines.espeak import EspeakEngine

LONG_TEXT = " ".join([PARAGRAPH] * 15)  # ~9,000 characters


def client(server: LiveServer, *, http2: bool = False) -> httpx.AsyncClient:
    if http2:
        return httpx.AsyncClient(base_url=server.base_url, http1=False, http2=True, timeout=30)
    return httpx.AsyncClient(base_url=server.base_url, timeout=30)


def slots_idle(server: LiveServer) -> bool:
    stats = server.service.pool.statistics()
    return stats.in_use == 0 and stats.waiting == 0 and server.service.active_streams == 0


@pytest.mark.parametrize("http2", [False, True], ids=["http1.1", "h2c"])
async def test_generate_returns_valid_wav(live_server: LiveServer, http2: bool) -> None:
    async with client(live_server, http2=http2) as http:
        response = await http.post("/v1/tts/generate", json={"text": PARAGRAPH})
    assert response.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
    assert response.status_code == 200
    with wave.open(io.BytesIO(response.content)) as reader:
        assert reader.getframerate() == 22050
        assert reader.getnframes() * 2 + 44 == len(response.content)


@pytest.mark.parametrize("http2", [False, True], ids=["http1.1", "h2c"])
async def test_sse_order_chunk_sizes_and_playable_join(live_server: LiveServer, http2: bool) -> None:
    async with client(live_server, http2=http2) as http:
        response = await http.get("/v1/tts/stream-sse", params={"text": PARAGRAPH, "chunk_size": 4096})
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_events(response.text)
    assert [name for name, _ in events[:1]] == ["format"]
    assert [name for name, _ in events[-2:]] == ["metrics", "done"]
    chunks = [base64.b64decode(data["chunk"]) for name, data in events if name == "audio"]
    assert all(len(chunk) <= 4096 for chunk in chunks)
    assert [data["index"] for name, data in events if name == "audio"] == list(range(1, len(chunks) + 1))
    metrics = events[-2][1]
    assert metrics["total_bytes"] == sum(map(len, chunks))
    assert metrics["sentences"] == 10
    # The decoded chunks joined are a WAV file a player can open.
    joined = b"".join(chunks)
    with wave.open(io.BytesIO(joined)) as reader:
        assert reader.getframerate() == 22050
        frames = reader.readframes(10**9)
    assert len(frames) / 44100 == pytest.approx(metrics["audio_duration"], abs=0.01)


async def test_original_python_sse_example_yields_playable_audio(live_server: LiveServer, tmp_path: Any) -> None:
    def original_client() -> list[bytes]:
        # The original API's documented example, verbatim apart from the URL.
        import base64
        import json

        import requests

        response = requests.get(
            f"{live_server.base_url}/v1/tts/stream-sse",
            params={"text": "Hello, world!"},
            stream=True,
        )

        audio_chunks = []
        for line in response.iter_lines():
            if line.startswith(b"data:"):
                data = json.loads(line[5:])
                if "chunk" in data:
                    audio_chunks.append(base64.b64decode(data["chunk"]))
        return audio_chunks

    audio_chunks = await trio.to_thread.run_sync(original_client)
    path = tmp_path / "hello.wav"
    path.write_bytes(b"".join(audio_chunks))  # what the README tells users to do
    with wave.open(str(path)) as reader:
        assert reader.getframerate() == 22050
        assert len(reader.readframes(10**9)) > 22050


async def test_sse_disconnect_mid_stream_frees_slots_then_serves_again(live_server: LiveServer) -> None:
    async with client(live_server) as http:
        async with http.stream("GET", "/v1/tts/stream-sse", params={"text": LONG_TEXT}) as response:
            async for line in response.aiter_lines():
                if line.startswith("event: audio"):
                    break  # leave after the first audio event: the connection is closed
        await eventually(lambda: slots_idle(live_server))
        response = await http.post("/v1/tts/generate", json={"text": "Still here."})
        assert response.status_code == 200


async def test_ws_ping_is_answered_during_a_generation(live_server: LiveServer) -> None:
    async with open_websocket_url(live_server.ws_url) as ws:
        await ws.send_message(json.dumps({"action": "generate", "text": LONG_TEXT}))
        assert json.loads(await ws.get_message())["type"] == "start"
        assert isinstance(await ws.get_message(), bytes)  # audio is flowing
        await ws.send_message(json.dumps({"action": "ping"}))
        seen_pong_before_done = False
        while True:
            message = await ws.get_message()
            if isinstance(message, str):
                kind = json.loads(message)["type"]
                if kind == "pong":
                    seen_pong_before_done = True
                    break
                assert kind != "done"
        assert seen_pong_before_done
        await ws.send_message(json.dumps({"action": "stop"}))


async def test_ws_stop_sends_no_audio_after_stopped_and_socket_stays_usable(live_server: LiveServer) -> None:
    async with open_websocket_url(live_server.ws_url) as ws:
        await ws.send_message(json.dumps({"action": "generate", "text": LONG_TEXT, "request_id": "long"}))
        await ws.send_message(json.dumps({"action": "generate", "text": "Queued behind.", "request_id": "queued"}))
        assert json.loads(await ws.get_message())["request_id"] == "long"
        assert isinstance(await ws.get_message(), bytes)
        await ws.send_message(json.dumps({"action": "stop"}))
        while True:
            message = await ws.get_message()
            if isinstance(message, str) and json.loads(message)["type"] == "stopped":
                assert json.loads(message)["request_id"] == "long"
                break
        # Nothing of the stopped (or the queued) generation follows; the next one works.
        await ws.send_message(json.dumps({"action": "generate", "text": "After the stop.", "request_id": "next"}))
        after = []
        while True:
            message = await ws.get_message()
            after.append(message)
            if isinstance(message, str) and json.loads(message)["type"] == "done":
                break
        assert json.loads(after[0]) == {
            "type": "start",
            "request_id": "next",
            "format": {
                "container": "wav",
                "encoding": "pcm_s16le",
                "sample_rate": 22050,
                "sample_width": 2,
                "channels": 1,
            },
        }
        texts = [json.loads(m) for m in after if isinstance(m, str)]
        assert all(message.get("request_id") == "next" for message in texts)
    await eventually(lambda: slots_idle(live_server))


async def test_ws_disconnect_mid_stream_frees_slots(live_server: LiveServer) -> None:
    async with open_websocket_url(live_server.ws_url) as ws:
        await ws.send_message(json.dumps({"action": "generate", "text": LONG_TEXT}))
        await ws.get_message()
        assert isinstance(await ws.get_message(), bytes)
    await eventually(lambda: slots_idle(live_server))
    async with client(live_server) as http:
        assert (await http.post("/v1/tts/generate", json={"text": "Next."})).status_code == 200


async def test_ws_bad_messages_get_errors_and_the_socket_stays_open(live_server: LiveServer) -> None:
    async with open_websocket_url(live_server.ws_url) as ws:
        for message, code in [
            ("{nope", "invalid_json"),
            ("[1, 2]", "bad_request"),
            (json.dumps({"action": "sing"}), "unknown_action"),
            (json.dumps({"text": "no action"}), "bad_request"),
            (json.dumps({"action": "generate", "text": ""}), "empty_text"),
            (json.dumps({"action": "generate", "text": "x" * 20_001}), "text_too_long"),
            (json.dumps({"action": "generate", "text": "hi", "voice_id": "nope"}), "voice_not_found"),
            (json.dumps({"action": "generate", "text": "hi", "chunk_size": "big"}), "invalid_parameter"),
        ]:
            await ws.send_message(message)
            reply = json.loads(await ws.get_message())
            assert (reply["type"], reply["code"]) == ("error", code)
        await ws.send_message(json.dumps({"action": "generate", "text": " ", "request_id": "mine"}))
        assert json.loads(await ws.get_message())["request_id"] == "mine"
        await ws.send_message(b"\x00binary")
        assert json.loads(await ws.get_message())["code"] == "bad_request"
        await ws.send_message(json.dumps({"action": "ping"}))
        assert json.loads(await ws.get_message()) == {"type": "pong"}


async def test_ws_queue_limit_is_reported(live_server: LiveServer) -> None:
    limit = live_server.service.settings.ws_max_queued
    async with open_websocket_url(live_server.ws_url) as ws:
        for index in range(limit + 2):
            await ws.send_message(json.dumps({"action": "generate", "text": LONG_TEXT, "request_id": f"r{index}"}))
        errors: list[dict[str, Any]] = []
        with trio.move_on_after(10):
            while not errors:
                message = await ws.get_message()
                if isinstance(message, str) and json.loads(message)["type"] == "error":
                    errors.append(json.loads(message))
        assert errors and errors[0]["code"] == "queue_full"
        await ws.send_message(json.dumps({"action": "stop"}))


async def test_concurrent_sse_streams_all_complete_within_the_slot_limit(live_server: LiveServer) -> None:
    results: list[dict[str, Any]] = []
    peak = 0

    async def watch_slots() -> None:
        nonlocal peak
        while True:
            peak = max(peak, live_server.service.pool.statistics().in_use)
            await trio.sleep(0.001)

    async with client(live_server) as http:

        async def one() -> None:
            response = await http.get("/v1/tts/stream-sse", params={"text": PARAGRAPH})
            events = parse_events(response.text)
            assert events[-1] == ("done", {"status": "complete"})
            results.append(events[-2][1])

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch_slots)
            async with trio.open_nursery() as streams:
                for _ in range(8):
                    streams.start_soon(one)
            nursery.cancel_scope.cancel()
    assert len(results) == 8
    assert all(result["sentences"] == 10 for result in results)
    assert 1 <= peak <= live_server.service.pool.statistics().total
    await eventually(lambda: slots_idle(live_server))


async def test_chunked_body_over_the_limit_is_rejected_while_reading(live_server: LiveServer) -> None:
    # A raw socket, because httpx reads no response before its upload ends,
    # while a server should answer (and stop reading) as soon as the limit is passed.
    host, port = live_server.base_url.removeprefix("http://").split(":")
    stream = await trio.open_tcp_stream(host, int(port))
    head = (
        b"POST /v1/tts/generate HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"x" * 65536
    reply = b""
    async with stream, trio.open_nursery() as nursery:

        async def upload() -> None:
            try:
                await stream.send_all(head)
                for _ in range(64):  # 4 MiB, far over the 1 MiB limit
                    await stream.send_all(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the server may close the connection after its answer

        nursery.start_soon(upload)
        with trio.fail_after(10):
            while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
                data = await stream.receive_some()
                if not data:
                    break
                reply += data
        nursery.cancel_scope.cancel()
    assert reply.startswith(b"HTTP/1.1 413")
    body = json.loads(reply.split(b"\r\n\r\n", 1)[1])
    assert body["error"]["code"] == "body_too_large"
    async with client(live_server) as http:
        assert (await http.get("/health")).status_code == 200


async def test_ws_stop_then_generate_with_a_full_queue(live_server: LiveServer) -> None:
    limit = live_server.service.settings.ws_max_queued
    async with open_websocket_url(live_server.ws_url) as ws:
        for index in range(limit + 1):  # one running, the queue full
            await ws.send_message(json.dumps({"action": "generate", "text": LONG_TEXT, "request_id": f"q{index}"}))
        await ws.send_message(json.dumps({"action": "stop"}))
        await ws.send_message(json.dumps({"action": "generate", "text": "Right after the stop.", "request_id": "new"}))
        seen = []
        while True:
            message = await ws.get_message()
            if isinstance(message, str):
                parsed = json.loads(message)
                seen.append((parsed["type"], parsed.get("request_id"), parsed.get("code")))
                if parsed["type"] == "done" and parsed["request_id"] == "new":
                    break
        assert ("error", "new", "queue_full") not in seen
        assert ("start", "new", None) in seen


async def test_text_that_is_not_unicode_is_refused_everywhere(live_server: LiveServer) -> None:
    body = '{"text": "bad \\ud800 surrogate"}'
    async with httpx.AsyncClient(base_url=live_server.base_url) as http:
        response = await http.post("/v1/tts/generate", content=body, headers={"Content-Type": "application/json"})
        assert (response.status_code, response.json()["error"]["code"]) == (422, "invalid_parameter")
    async with open_websocket_url(live_server.ws_url) as ws:
        await ws.send_message('{"action": "append", "context_id": "c", "text": "bad \\ud800"}')
        assert json.loads(await ws.get_message())["code"] == "invalid_parameter"
        await ws.send_message(b"")  # an empty binary frame
        assert json.loads(await ws.get_message())["code"] == "bad_request"
        await ws.send_message(json.dumps({"action": "ping"}))
        assert json.loads(await ws.get_message()) == {"type": "pong"}
    assert all(cast(EspeakEngine, engine)._worker is not None for engine in live_server.service.pool.engines)
