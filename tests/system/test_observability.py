"""Prometheus metrics and request ids, over the real server."""

from __future__ import annotations

import json
import logging
import re

import httpx
import trio
import trio.lowlevel
from trio_websocket import open_websocket_url

from tests.support.live import PARAGRAPH, LiveServer, eventually
from tts_trio.observability import RequestIdFilter, request_id


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (.*)$", line)
        if match and match.group(1) == name:
            found = ",".join(sorted((match.group(2) or "").split(","))) if match.group(2) else ""
            if found == wanted:
                return float(match.group(3))
    return 0.0


async def test_metrics_count_requests_latency_slots_and_cancellations(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=30) as http:
        assert (await http.post("/v1/tts/generate", json={"text": "Count me."})).status_code == 200
        assert (await http.post("/v1/tts/generate", json={"text": ""})).status_code == 422
        assert "event: done" in (await http.get("/v1/tts/stream-sse", params={"text": "Me too."})).text
        async with open_websocket_url(live_server.ws_url) as ws:
            await ws.send_message(json.dumps({"action": "generate", "text": " ".join([PARAGRAPH] * 10)}))
            await ws.get_message()
            assert isinstance(await ws.get_message(), bytes)
            await ws.send_message(json.dumps({"action": "stop"}))
            while json.loads(await _next_text(ws))["type"] != "stopped":
                pass
        await eventually(lambda: live_server.service.active_streams == 0)
        response = await http.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert sample(text, "tts_requests_total", route="/v1/tts/generate", method="POST", status="200") == 1
    assert sample(text, "tts_requests_total", route="/v1/tts/generate", method="POST", status="422") == 1
    assert sample(text, "tts_requests_total", route="/v1/tts/stream", method="WEBSOCKET", status="101") == 1
    assert sample(text, "tts_time_to_first_audio_seconds_count", protocol="rest") == 1
    assert sample(text, "tts_time_to_first_audio_seconds_count", protocol="sse") == 1
    assert sample(text, "tts_sentence_synthesis_seconds_count", engine="system") >= 2
    assert sample(text, "tts_cancellations_total", cause="stop") == 1
    assert sample(text, "tts_slots_total") == 2
    assert sample(text, "tts_slots_in_use") == 0
    assert sample(text, "tts_active_streams") == 0
    assert sample(text, "tts_queue_depth") == 0


async def _next_text(ws: object) -> str:
    while True:
        message = await ws.get_message()  # type: ignore[attr-defined]
        if isinstance(message, str):
            return message


async def test_request_ids_are_echoed_or_made(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.base_url) as http:
        given = await http.get("/health", headers={"X-Request-Id": "trace-42"})
        assert given.headers["x-request-id"] == "trace-42"
        made = await http.get("/health", headers={"X-Request-Id": "not ok!"})
        assert re.fullmatch(r"[0-9a-f]{16}", made.headers["x-request-id"])
        error = await http.get("/v1/nothing")
        assert re.fullmatch(r"[0-9a-f]{16}", error.headers["x-request-id"])


async def test_log_records_carry_the_request_id() -> None:
    record = logging.LogRecord("tts_trio.test", logging.INFO, __file__, 1, "hello", None, None)
    token = request_id.set("abc123")
    try:
        assert RequestIdFilter().filter(record)
    finally:
        request_id.reset(token)
    assert record.request_id == "abc123"  # type: ignore[attr-defined]
    await trio.lowlevel.checkpoint()


def test_json_log_lines_carry_the_request_id() -> None:
    from tts_trio.observability import JsonFormatter

    record = logging.LogRecord("tts_trio.test", logging.WARNING, __file__, 1, "engine %s slow", ("system",), None)
    record.request_id = "r-1"
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "engine system slow"
    assert (line["level"], line["request_id"], line["logger"]) == ("warning", "r-1", "tts_trio.test")


async def test_refusals_on_open_sockets_are_counted_by_protocol(live_server: LiveServer) -> None:
    ws_base = live_server.base_url.replace("http://", "ws://")
    sockets = {
        "websocket": "/v1/tts/stream",
        "cartesia": "/tts/websocket",
        "deepgram": "/v1/speak",
        "elevenlabs": "/v1/text-to-speech/any/multi-stream-input",
    }
    for protocol, path in sockets.items():
        async with open_websocket_url(ws_base + path) as ws:
            await ws.send_message("{not json")
            reply = json.loads(await ws.get_message())
            assert reply, protocol  # each dialect's own error shape; the socket stays open
    async with httpx.AsyncClient(base_url=live_server.base_url) as http:
        text = (await http.get("/metrics")).text
    for protocol in sockets:
        counted = sum(
            float(value)
            for labels, value in re.findall(r"^tts_protocol_errors_total\{([^}]*)\} (\S+)$", text, flags=re.M)
            if f'protocol="{protocol}"' in labels
        )
        assert counted == 1, (protocol, text)
