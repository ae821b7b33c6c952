"""Graceful shutdown seen from clients: streams end with a final event, nothing is left running.

The server here is a real Hypercorn with the same draining shutdown trigger
``tts-trio serve`` uses; a paced engine makes "still running when the drain
deadline comes" certain rather than a race with a fast engine.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from tests.support.engines import PacedEngine, use_engine
from tests.support.live import PARAGRAPH, LiveServer, eventually, start_live_server
from tests.support.sse import parse_events
from tts_trio.api.app import begin_shutdown
from tts_trio.audio.formats import AudioFormat
from tts_trio.engines.pool import EnginePool
from tts_trio.errors import ShuttingDown
from tts_trio.settings import Settings
from tts_trio.synthesis.admission import Admission
from tts_trio.synthesis.drain import Shutdown

#: Long enough that the final event gets the whole margin (1 s) before Hypercorn cuts what is left.
GRACE = 4.0
#: 80 sentences at 0.1 s each: far longer than GRACE.
LONG_TEXT = " ".join(f"Sentence number {n} goes on." for n in range(80))


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[str, dict[str, object]]]:
    """Events of a streaming SSE response as they arrive."""
    buffer = ""
    async for text in response.aiter_text():
        buffer += text
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            for event in parse_events(block + "\n\n"):
                yield event


async def paced_server(
    nursery: trio.Nursery, settings: Settings, graceful_timeout: float, *engines: PacedEngine
) -> tuple[LiveServer, Callable[[], Awaitable[None]]]:
    server, stop = await start_live_server(nursery, settings, graceful_timeout=graceful_timeout)
    use_engine(server, EnginePool("paced", list(engines), AudioFormat(16000)))
    return server, stop


async def test_a_stream_longer_than_the_grace_ends_with_a_shutting_down_event(
    settings: Settings, nursery: trio.Nursery
) -> None:
    engine = PacedEngine(chunks=2, interval=0.05)
    server, stop = await paced_server(nursery, settings, GRACE, engine)
    service = server.service
    names: list[str] = []
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        with trio.fail_after(15):
            async with http.stream("GET", "/v1/tts/stream-sse", params={"text": LONG_TEXT}) as response:
                async for name, data in sse_events(response):
                    names.append(name)
                    if name == "audio" and names.count("audio") == 1:
                        nursery.start_soon(stop)
                    last = (name, data)
    assert names[0] == "format" and "done" not in names
    assert last[0] == "error" and last[1]["code"] == "shutting_down"
    assert names.count("timings") < 80  # really cut short
    # The engine was stopped, not abandoned: no sentence runs on and no slot is held.
    assert engine.stop_calls >= 1
    await eventually(lambda: engine.active == 0)
    assert service.pool.statistics().in_use == 0
    assert service.active_streams == 0


async def test_a_stream_that_fits_in_the_grace_finishes_normally(settings: Settings, nursery: trio.Nursery) -> None:
    """And the server exits as soon as it has, with the client still connected: not at the graceful timeout."""
    server, stop = await paced_server(nursery, settings, 60.0, PacedEngine(chunks=2, interval=0.05))
    names: list[str] = []
    text = "One short sentence. And another one. And a third."
    stopped = trio.Event()

    async def stop_server() -> None:
        await stop()
        stopped.set()

    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        with trio.fail_after(15):
            async with http.stream("GET", "/v1/tts/stream-sse", params={"text": text}) as response:
                async for name, _ in sse_events(response):
                    names.append(name)
                    if name == "audio" and names.count("audio") == 1:
                        nursery.start_soon(stop_server)
        with trio.fail_after(20):  # not the 60 s graceful timeout
            await stopped.wait()
    assert names[-2:] == ["metrics", "done"]
    assert names.count("timings") == 3


async def test_rest_generate_cut_by_the_drain_is_a_503_with_retry_after(
    settings: Settings, nursery: trio.Nursery
) -> None:
    engine = PacedEngine(chunks=2, interval=0.05)
    server, stop = await paced_server(nursery, settings, GRACE, engine)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:

        async def stop_once_started() -> None:
            await trio.to_thread.run_sync(engine.started.wait)
            await stop()

        nursery.start_soon(stop_once_started)
        with trio.fail_after(15):
            response = await http.post("/v1/tts/generate", json={"text": LONG_TEXT})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "shutting_down"
    assert response.headers["Retry-After"] == "1"


async def test_draining_refuses_new_work_and_fails_readiness(settings: Settings, nursery: trio.Nursery) -> None:
    server, _ = await start_live_server(nursery, settings)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        assert (await http.get("/ready")).status_code == 200
        begin_shutdown(server.app, 10.0)  # what the signal does, while the listener is still open
        ready = await http.get("/ready")
        assert (ready.status_code, ready.json()["ready"]) == (503, False)
        assert (await http.get("/health")).status_code == 200  # alive while it drains
        refused = await http.post("/v1/tts/generate", json={"text": "Too late."})
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "shutting_down"
        sse = await http.get("/v1/tts/stream-sse", params={"text": "Too late."})
        assert (sse.status_code, sse.json()["error"]["code"]) == (503, "shutting_down")


async def test_a_request_waiting_for_a_place_is_refused_when_the_drain_begins() -> None:
    shutdown = Shutdown()
    admission = Admission(1, 4, 60.0, shutdown)
    held = await admission.acquire()
    outcome: list[BaseException] = []

    async def wait_for_place() -> None:
        try:
            await admission.acquire()
        except ShuttingDown as error:
            outcome.append(error)

    with trio.fail_after(5):  # not the 60 s queue wait
        async with trio.open_nursery() as nursery:
            nursery.start_soon(wait_for_place)
            await eventually(lambda: admission.waiting == 1)
            shutdown.begin(10.0)
    assert [error.code for error in outcome] == ["shutting_down"]  # type: ignore[attr-defined]
    held.release()
    assert admission.running == 0


async def test_websockets_get_their_final_message_then_a_going_away_close(
    settings: Settings, nursery: trio.Nursery
) -> None:
    engine = PacedEngine(chunks=2, interval=0.05)
    server, stop = await paced_server(nursery, settings, GRACE, engine)
    with trio.fail_after(15):
        async with (
            open_websocket_url(server.ws_url) as idle,
            open_websocket_url(server.ws_url) as busy,
        ):
            await busy.send_message(json.dumps({"action": "generate", "text": LONG_TEXT, "request_id": "long"}))
            await busy.send_message(json.dumps({"action": "generate", "text": "Queued.", "request_id": "next"}))
            while not isinstance(await busy.get_message(), bytes):
                pass  # start, then the first audio
            nursery.start_soon(stop)
            with pytest.raises(ConnectionClosed) as idle_closed:
                await idle.get_message()
            assert idle_closed.value.reason is not None and idle_closed.value.reason.code == 1001
            replies: list[dict[str, object]] = []
            with pytest.raises(ConnectionClosed) as busy_closed:
                while True:
                    message = await busy.get_message()
                    if isinstance(message, str):
                        replies.append(json.loads(message))
            assert busy_closed.value.reason is not None and busy_closed.value.reason.code == 1001
    errors = [(reply.get("request_id"), reply.get("code")) for reply in replies if reply["type"] == "error"]
    assert errors == [("long", "shutting_down"), ("next", "shutting_down")]
    assert not any(reply["type"] == "done" for reply in replies)
    await eventually(lambda: engine.active == 0)


async def test_shutdown_leaves_no_engine_work_behind(
    settings: Settings, nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    """Several streams of every kind at once, then shutdown: every slot and stream is released."""
    engines = [PacedEngine(chunks=2, interval=0.05) for _ in range(2)]
    server, stop = await paced_server(nursery, settings, GRACE, *engines)
    service = server.service  # the app forgets it once it has stopped
    outcomes: list[str] = []
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:

        async def sse() -> None:
            async with http.stream("GET", "/v1/tts/stream-sse", params={"text": LONG_TEXT}) as response:
                async for name, data in sse_events(response):
                    last = (name, data)
            outcomes.append(f"sse:{last[0]}:{last[1].get('code')}")

        async def rest() -> None:
            response = await http.post("/v1/tts/generate", json={"text": LONG_TEXT})
            outcomes.append(f"rest:{response.status_code}")

        with trio.fail_after(20):
            async with trio.open_nursery() as clients:
                for _ in range(2):
                    clients.start_soon(sse)
                    clients.start_soon(rest)
                await eventually(lambda: service.active_streams == 4)
                await stop()
    assert sorted(outcomes) == ["rest:503"] * 2 + ["sse:error:shutting_down"] * 2
    registry = service.metrics.registry
    assert registry.get_sample_value("tts_cancellations_total", {"cause": "shutdown"}) == 4
    assert registry.get_sample_value("tts_cancellations_total", {"cause": "disconnect"}) is None
    assert all(engine.active == 0 for engine in engines)
    assert service.active_streams == 0
    # Every instance was idle when the pool closed (it warns about any still busy).
    assert "still busy at shutdown" not in caplog.text


async def test_a_client_that_reads_nothing_does_not_hold_up_shutdown(settings: Settings, nursery: trio.Nursery) -> None:
    """Hypercorn's shielded socket writes ignore its own graceful timeout; the socket_sends fix bounds them."""
    server, stop = await start_live_server(nursery, settings, graceful_timeout=2.0)
    service = server.service
    host, port = server.base_url.removeprefix("http://").split(":")
    stuck = await trio.open_tcp_stream(host, int(port))
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    text = " ".join([PARAGRAPH] * 30).replace(" ", "%20")
    await stuck.send_all(f"GET /v1/tts/stream-sse?text={text} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await eventually(lambda: service.active_streams == 1)
    with trio.fail_after(15):  # the send timeout (30 s) is not what ends it
        await stop()
    assert service.active_streams == 0
    await stuck.aclose()


@pytest.mark.parametrize("http2", [False, True], ids=["http1.1", "h2c"])
async def test_an_idle_kept_alive_connection_does_not_hold_up_shutdown(
    settings: Settings, nursery: trio.Nursery, http2: bool
) -> None:
    """Quart-Trio cancels Hypercorn's "connection is idle" step half-way; the socket_sends fix finishes it.

    Without it, every SIGTERM with a client connected waited out the whole
    graceful timeout (and idle connections were never closed at all).
    """
    server, stop = await start_live_server(nursery, settings, graceful_timeout=60.0)
    async with httpx.AsyncClient(base_url=server.base_url, http1=not http2, http2=http2) as http:
        response = await http.get("/health")
        assert response.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
        with trio.fail_after(20):  # not the 60 s graceful timeout
            await stop()


async def test_an_idle_kept_alive_connection_is_closed_after_the_keep_alive_timeout(
    settings: Settings, nursery: trio.Nursery
) -> None:
    server, _ = await start_live_server(nursery, settings, keep_alive_timeout=0.5)
    host, port = server.base_url.removeprefix("http://").split(":")
    async with await trio.open_tcp_stream(host, int(port)) as client:
        await client.send_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        with trio.fail_after(20):
            while chunk := await client.receive_some():
                received += chunk  # the response, then EOF once the server closes the idle connection
    assert received.startswith(b"HTTP/1.1 200")
