"""Engine faults seen from a client: an error event or message with a code, and nothing else hurt."""

from __future__ import annotations

import json

import httpx
from trio_websocket import open_websocket_url

from tests.support.engines import FailingEngine, PacedEngine, use_engine
from tests.support.live import LiveServer, eventually
from tests.support.sse import parse_events
from tts_trio.audio.formats import AudioFormat
from tts_trio.engines.pool import EnginePool


async def test_an_engine_that_raises_mid_stream(live_server: LiveServer) -> None:
    use_engine(live_server, EnginePool("failing", [FailingEngine(chunks=2, interval=0.001)], AudioFormat(16000)))
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=30) as http:
        response = await http.get("/v1/tts/stream-sse", params={"text": "First fine. Then boom. Never said."})
        events = parse_events(response.text)
        names = [name for name, _ in events]
        assert names[0] == "format" and "audio" in names
        assert names[-1] == "error" and "done" not in names
        assert events[-1][1]["code"] == "synthesis_failed"
        assert "secret" not in response.text  # the library's message stays in the log
        generate = await http.post("/v1/tts/generate", json={"text": "boom"})
        assert (generate.status_code, generate.json()["error"]["code"]) == (503, "synthesis_failed")
        async with open_websocket_url(live_server.ws_url) as ws:
            await ws.send_message(json.dumps({"action": "generate", "text": "boom", "request_id": "x"}))
            while True:
                message = await ws.get_message()
                if isinstance(message, str) and json.loads(message)["type"] not in ("start", "timings"):
                    break
            reply = json.loads(message)
            assert (reply["type"], reply["code"], reply["request_id"]) == ("error", "synthesis_failed", "x")
            await ws.send_message(json.dumps({"action": "ping"}))
            assert json.loads(await ws.get_message()) == {"type": "pong"}
        ok = await http.post("/v1/tts/generate", json={"text": "A fine sentence."})
        assert ok.status_code == 200
    await eventually(lambda: live_server.service.pool.statistics().in_use == 0)
    # The pool reports to the server's metrics because it was built with the service's hooks.
    errors = live_server.service.metrics.registry.get_sample_value("tts_engine_errors_total", {"engine": "failing"})
    assert errors == 3  # one failed sentence each over SSE, REST and WebSocket


async def test_a_hung_engine_ends_the_stream_and_fails_readiness_until_it_recovers(live_server: LiveServer) -> None:
    hung = PacedEngine(chunks=1, interval=1.5, honour_stop=False)
    spare = PacedEngine(chunks=1, interval=0.001)
    use_engine(live_server, EnginePool("hanging", [spare, hung], AudioFormat(16000)))
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=30) as http:
        response = await http.get("/v1/tts/stream-sse", params={"text": "This hangs."})
        events = parse_events(response.text)
        assert events[-1] == ("error", {"code": "engine_timeout", "message": events[-1][1]["message"]})
        ready = await http.get("/ready")
        assert (ready.status_code, ready.json()["ready"]) == (503, False)
        assert (await http.get("/health")).status_code == 200  # alive, just not ready
        # The spare instance still serves, and a success makes the engine ready again.
        assert (await http.post("/v1/tts/generate", json={"text": "Spare."})).status_code == 200
        assert (await http.get("/ready")).status_code == 200
        await eventually(lambda: live_server.service.pool.statistics().total == 2, within=5)
