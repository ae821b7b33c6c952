"""HTTP/2 end to end: TLS with ALPN, stream resets and closed connections, WebSocket over HTTP/2, multiplexing.

Every test runs a real Hypercorn server on a loopback port. httpx stands in
for ordinary clients; tests/support/h2_client.py is a raw ``h2`` client for what
httpx cannot do: reset one stream while the connection lives on, open many
streams on one connection it controls, and RFC 8441 extended CONNECT
(WebSocket over HTTP/2), which browsers use on HTTP/2 connections.

Where timing must be controlled, deterministic engines built on
tests/support/engines.py replace espeak-ng; cancellation is also checked with the
real engine.

Over HTTP/2, Hypercorn 0.18 by itself does not hold a stream's producer
back when the client stops reading; tts_trio.server.hypercorn_fixes.h2_flow_control fixes that
(``test_a_client_that_stops_reading_holds_back_synthesis``). Tests that must
act while a real-engine stream is still running use texts long enough (800
sentences, seconds of synthesis) that the server cannot finish them first
however the client reads.
"""

from __future__ import annotations

import base64
import io
import json
import math
import ssl
import threading
import urllib.parse
import wave
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import trio
import trustme
from hypercorn.trio import serve

from tests.support.engines import PacedEngine
from tests.support.h2_client import H2Client, H2Stream, H2WebSocket, WebSocketClosed, open_h2, open_websocket
from tests.support.live import PARAGRAPH, LiveServer, eventually, start_live_server
from tests.support.sse import parse_events
from tts_trio.api.app import create_app
from tts_trio.audio.formats import AudioFormat
from tts_trio.engines.pool import EnginePool, PoolPolicy
from tts_trio.server.launch import hypercorn_config
from tts_trio.settings import Settings

#: 800 sentences: espeak-ng needs seconds for it, the paced engine more than 30 s.
LONGEST_TEXT = " ".join([PARAGRAPH] * 80)
LONGEST_SENTENCES = 800
#: Connection-level receive window of the raw client: large, like a browser's, so that one
#: stream left unread cannot stall the others (each stream keeps the default 64 KiB window).
CONNECTION_WINDOW = 16 * 1024 * 1024


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """conftest's settings, with room for LONGEST_TEXT (about 51 KB URL-encoded, within Hypercorn's 64 KiB headers)."""
    return Settings.load(
        {"voices_path": tmp_path / "voices", "slots": 2, "max_queue_wait": 2.0, "max_text_chars": 60_000},
        environ={},
    )


# -- servers and connections --------------------------------------------------


@attrs.frozen
class Endpoint:
    """A running server and how to reach it: cleartext (h2c prior knowledge) or TLS."""

    server: LiveServer
    #: A client context trusting the test CA; None for cleartext.
    tls: ssl.SSLContext | None = None

    @property
    def host(self) -> str:
        return self.server.base_url.split("://")[1].rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.server.base_url.rsplit(":", 1)[1])

    @property
    def authority(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def verify(self) -> ssl.SSLContext:
        """The client TLS context, for httpx's ``verify``."""
        assert self.tls is not None, "a cleartext endpoint"
        return self.tls


def client_tls_context(ca: trustme.CA, alpn: list[str]) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    context.set_alpn_protocols(alpn)
    return context


@asynccontextmanager
async def tls_live_server(settings: Settings, tmp_path: Path) -> AsyncIterator[tuple[LiveServer, trustme.CA]]:
    """Like conftest's ``start_live_server``, with TLS configured the production way (settings -> Hypercorn).

    A fresh CA issues a certificate for 127.0.0.1; the server gets it
    through ``certfile``/``keyfile`` settings, as ``tts-trio serve`` would.
    """
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile = tmp_path / "server.pem", tmp_path / "server.key"
    for index, pem in enumerate(cert.cert_chain_pems):
        pem.write_to_path(str(certfile), append=index > 0)
    cert.private_key_pem.write_to_path(str(keyfile))
    settings = attrs.evolve(settings, host="127.0.0.1", port=0, certfile=certfile, keyfile=keyfile)
    config = hypercorn_config(settings)
    config.graceful_timeout = 1.0
    assert config.ssl_enabled
    assert config.alpn_protocols == ["h2", "http/1.1"]  # Hypercorn's default: h2 preferred
    app = create_app(settings)
    shutdown = trio.Event()
    finished = trio.Event()
    async with trio.open_nursery() as nursery:

        async def run(task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
            try:
                await serve(app, config, shutdown_trigger=shutdown.wait, task_status=task_status)  # type: ignore[arg-type]
            finally:
                finished.set()

        binds: list[str] = await nursery.start(run)
        assert binds[0].startswith("https://")
        try:
            yield LiveServer(app=app, base_url=binds[0]), ca
        finally:
            shutdown.set()
            with trio.fail_after(20):
                await finished.wait()


@pytest.fixture
async def tls_endpoint(settings: Settings, tmp_path: Path) -> AsyncIterator[Endpoint]:
    async with tls_live_server(settings, tmp_path) as (server, ca):
        yield Endpoint(server, client_tls_context(ca, ["h2"]))


@pytest.fixture
def h2c_endpoint(live_server: LiveServer) -> Endpoint:
    return Endpoint(live_server)


@pytest.fixture(params=["h2c", "tls"])
async def endpoint(request: pytest.FixtureRequest, settings: Settings, tmp_path: Path) -> AsyncIterator[Endpoint]:
    """Either transport: cleartext h2 with prior knowledge, or h2 chosen by ALPN over TLS."""
    if request.param == "tls":
        async with tls_live_server(settings, tmp_path) as (server, ca):
            yield Endpoint(server, client_tls_context(ca, ["h2"]))
    else:
        async with trio.open_nursery() as nursery:
            server, stop = await start_live_server(nursery, settings)
            try:
                yield Endpoint(server)
            finally:
                await stop()  # type: ignore[misc]


@asynccontextmanager
async def connect(endpoint: Endpoint) -> AsyncIterator[H2Client]:
    """One raw HTTP/2 connection to ``endpoint``; it is closed when the block ends."""
    stream: trio.abc.Stream = await trio.open_tcp_stream(endpoint.host, endpoint.port)
    scheme = "http"
    if endpoint.tls is not None:
        tls_stream = trio.SSLStream(stream, endpoint.tls, server_hostname=endpoint.host, https_compatible=True)
        await tls_stream.do_handshake()
        assert tls_stream.selected_alpn_protocol() == "h2"
        stream, scheme = tls_stream, "https"
    async with open_h2(stream, endpoint.authority, scheme=scheme) as client:
        client.conn.increment_flow_control_window(CONNECTION_WINDOW)
        await client.flush()
        yield client


# -- engines and server state ----------------------------------------------------


class CountingEngine(PacedEngine):
    """A paced engine (40 ms a sentence) that counts the sentences it was asked to speak."""

    def __init__(self) -> None:
        super().__init__(chunks=2, interval=0.02)
        self._lock = threading.Lock()
        self.sentences = 0

    def synthesize(self, text: str, sentence_count: int = 0) -> bool:
        with self._lock:
            self.sentences += 1
        return super().synthesize(text)


class Gate:
    """Where GatedEngine sentences wait until the test opens it; counts the sentences waiting there."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._opened = threading.Event()
        self.arrived = 0

    def pass_through(self) -> None:
        with self._lock:
            self.arrived += 1
        self._opened.wait()

    def open(self) -> None:
        self._opened.set()


class GatedEngine(PacedEngine):
    """Holds every sentence that contains "Wait" at ``gate`` until the test opens it.

    A stream at such a sentence stays open, holding its slot, for exactly as
    long as the test needs; no timing involved. Each audio chunk is the
    sentence's text (see PacedEngine), so a test can tell whose audio a
    stream carried.
    """

    def __init__(self, gate: Gate) -> None:
        super().__init__(chunks=2, interval=0.001)
        self.gate = gate

    def synthesize(self, text: str, sentence_count: int = 0) -> bool:
        if "Wait" in text:
            self.gate.pass_through()
        return super().synthesize(text)


async def install_engines(server: LiveServer, engines: Sequence[PacedEngine]) -> EnginePool:
    """Make a pool of test engines the server's current engine, and shut espeak-ng down."""
    service = server.service
    pool = EnginePool(
        "test",
        list(engines),
        AudioFormat(16000),
        policy=PoolPolicy(stop_grace=5.0),
        hooks=service.pool_hooks(service.metrics),
    )
    previous = service.pool
    service.engine = attrs.evolve(service.engine, pool=pool, voices={}, variants=frozenset(), default_voice=None)
    await previous.aclose()
    return pool


async def counting_engine_for(server: LiveServer, engine_kind: str) -> CountingEngine | None:
    if engine_kind == "espeak-ng":
        return None
    engine = CountingEngine()
    await install_engines(server, [engine])
    return engine


def sentences_spoken(server: LiveServer, engine: CountingEngine | None) -> int:
    """Sentences the engine began (paced) or finished (espeak-ng, from the server's own metrics)."""
    if engine is not None:
        return engine.sentences
    value = server.service.metrics.registry.get_sample_value(
        "tts_sentence_synthesis_seconds_count", {"engine": server.service.pool.name}
    )
    return int(value or 0)


def disconnects(server: LiveServer) -> int:
    value = server.service.metrics.registry.get_sample_value("tts_cancellations_total", {"cause": "disconnect"})
    return int(value or 0)


def idle(server: LiveServer) -> bool:
    stats = server.service.pool.statistics()
    return stats.in_use == 0 and stats.waiting == 0 and server.service.active_streams == 0


# -- reading responses -------------------------------------------------------------


class SseReader:
    """Reads SSE events off a raw HTTP/2 stream one at a time (only as far as asked)."""

    def __init__(self, stream: H2Stream) -> None:
        self.stream = stream
        self._buffer = b""

    async def next_event(self) -> tuple[str, Any] | None:
        while b"\n\n" not in self._buffer:
            data = await self.stream.receive_some()
            if not data:
                assert not self._buffer.strip(), "the stream ended inside an event"
                return None
            self._buffer += data
        block, self._buffer = self._buffer.split(b"\n\n", 1)
        [event] = parse_events(block.decode() + "\n\n")
        return event

    async def until_audio(self, count: int) -> list[tuple[str, Any]]:
        """Events up to and including the ``count``-th ``audio`` event."""
        events: list[tuple[str, Any]] = []
        while sum(name == "audio" for name, _ in events) < count:
            event = await self.next_event()
            assert event is not None, f"the stream ended after {events}"
            events.append(event)
        return events

    async def rest(self) -> list[tuple[str, Any]]:
        events = []
        while (event := await self.next_event()) is not None:
            events.append(event)
        return events


def sse_path(text: str) -> str:
    return "/v1/tts/stream-sse?" + urllib.parse.urlencode({"text": text})


def joined_sse_audio(events: list[tuple[str, Any]]) -> bytes:
    """The decoded audio events joined, after checking their indexes and the stream's own byte count."""
    chunks = [(data["index"], base64.b64decode(data["chunk"])) for name, data in events if name == "audio"]
    assert [index for index, _ in chunks] == list(range(1, len(chunks) + 1))
    joined = b"".join(chunk for _, chunk in chunks)
    [metrics] = [data for name, data in events if name == "metrics"]
    assert metrics["total_bytes"] == len(joined)
    return joined


def wav_frames(data: bytes, *, rate: int = 22050, exact_header: bool = True) -> bytes:
    """The PCM of a 16-bit mono WAV file, checked to be one (espeak-ng speaks at 22050 Hz)."""
    with wave.open(io.BytesIO(data)) as reader:
        assert (reader.getframerate(), reader.getsampwidth(), reader.getnchannels()) == (rate, 2, 1)
        if exact_header:
            assert reader.getnframes() * 2 + 44 == len(data)
        frames = bytes(reader.readframes(10**9))
    assert frames, "no audio"
    return frames


def paced_chunks(pcm: bytes) -> list[bytes]:
    """A paced engine's audio cut back into its 32-byte chunks, each the start of its sentence's text."""
    assert len(pcm) % 32 == 0
    return [pcm[offset : offset + 32].rstrip(b".") for offset in range(0, len(pcm), 32)]


def paced_text(sentence: str) -> bytes:
    return sentence.encode()[:32].rstrip(b".")


async def h2_json(client: H2Client, path: str) -> tuple[int, Any]:
    stream = await client.get(path)
    status = await stream.wait_response()
    return status, json.loads(await stream.read_all())


async def receive_until(ws: H2WebSocket, kind: str) -> list[str | bytes]:
    """WebSocket messages up to and including the first JSON message of type ``kind``."""
    messages: list[str | bytes] = []
    while True:
        message = await ws.get_message()
        messages.append(message)
        if isinstance(message, str) and json.loads(message)["type"] == kind:
            return messages


# -- TLS: ALPN picks the protocol ---------------------------------------------------


@pytest.mark.parametrize(
    ("http2", "alpn", "version"),
    [(True, "h2", "HTTP/2"), (False, "http/1.1", "HTTP/1.1")],
    ids=["h2-client", "http1.1-only-client"],
)
async def test_tls_alpn_gives_each_client_its_protocol_on_one_port(
    settings: Settings, tmp_path: Path, http2: bool, alpn: str, version: str
) -> None:
    """A client offering h2 gets HTTP/2 over TLS; an HTTP/1.1-only client is still served on the same port."""
    with trio.fail_after(60):
        async with tls_live_server(settings, tmp_path) as (server, ca):
            verify = ssl.create_default_context()
            ca.configure_trust(verify)
            async with httpx.AsyncClient(base_url=server.base_url, http2=http2, verify=verify, timeout=30) as http:
                health = await http.get("/health")
                assert (health.http_version, health.status_code) == (version, 200)
                assert health.json()["status"] == "ok"
                tls = health.extensions["network_stream"].get_extra_info("ssl_object")
                assert tls.selected_alpn_protocol() == alpn
                response = await http.post("/v1/tts/generate", json={"text": PARAGRAPH})
                assert (response.http_version, response.status_code) == (version, 200)
                assert response.headers["content-type"] == "audio/wav"
                assert len(wav_frames(response.content)) / 44100 > 10  # ten sentences of speech


async def test_sse_over_tls_h2_delivers_playable_audio(tls_endpoint: Endpoint) -> None:
    """The whole SSE contract holds over TLS HTTP/2 with an ordinary client (httpx)."""
    server = tls_endpoint.server
    with trio.fail_after(60):
        async with httpx.AsyncClient(
            base_url=server.base_url, http2=True, verify=tls_endpoint.verify, timeout=30
        ) as http:
            response = await http.get("/v1/tts/stream-sse", params={"text": PARAGRAPH})
    assert response.http_version == "HTTP/2"
    events = parse_events(response.text)
    assert events[0][0] == "format" and [name for name, _ in events[-2:]] == ["metrics", "done"]
    assert events[-2][1]["sentences"] == 10
    wav_frames(joined_sse_audio(events), exact_header=False)


# -- SSE over HTTP/2: a reset stream or a closed connection stops synthesis ----------------


@pytest.mark.parametrize("engine_kind", ["paced", "espeak-ng"])
async def test_sse_stream_reset_stops_synthesis_and_the_connection_lives_on(
    h2c_endpoint: Endpoint, engine_kind: str
) -> None:
    """RST_STREAM on one SSE stream cancels its synthesis; the same connection then serves new streams.

    A reset stream is the HTTP/2 way to say "stop" without hanging up (a
    browser's EventSource.close() on an HTTP/2 connection), so the server
    must treat it as a disconnect of that stream alone.
    """
    server = h2c_endpoint.server
    engine = await counting_engine_for(server, engine_kind)
    with trio.fail_after(60):
        async with connect(h2c_endpoint) as client:
            stream = await client.get(sse_path(LONGEST_TEXT))
            assert await stream.wait_response() == 200
            events = await SseReader(stream).until_audio(3)
            assert events[0][0] == "format" and "done" not in [name for name, _ in events]
            await stream.reset()
            await eventually(lambda: idle(server))
            spoken = sentences_spoken(server, engine)
            assert spoken < LONGEST_SENTENCES  # stopped, not finished
            assert disconnects(server) == 1
            # The connection is still open and serves: the health check and a one-sentence stream.
            status, health = await h2_json(client, "/health")
            assert (status, health["active_streams"]) == (200, 0)
            after = await client.get(sse_path("One more sentence."))
            assert await after.wait_response() == 200
            assert (await SseReader(after).rest())[-1] == ("done", {"status": "complete"})
            # Exactly one more sentence was spoken: nothing of the reset stream went on meanwhile.
            assert sentences_spoken(server, engine) == spoken + 1
            assert not client.lost
    await eventually(lambda: idle(server))


@pytest.mark.parametrize("engine_kind", ["paced", "espeak-ng"])
async def test_closing_an_h2_connection_stops_every_stream_on_it(tls_endpoint: Endpoint, engine_kind: str) -> None:
    """Closing a TLS HTTP/2 connection with two SSE streams open cancels both syntheses."""
    server = tls_endpoint.server
    engine = await counting_engine_for(server, engine_kind)
    with trio.fail_after(60):
        async with connect(tls_endpoint) as client:
            streams = [await client.get(sse_path(LONGEST_TEXT)) for _ in range(2)]
            for stream in streams:
                assert await stream.wait_response() == 200
                await SseReader(stream).until_audio(2)
            assert server.service.active_streams == 2
        # The connection is closed here, in the middle of both streams.
        await eventually(lambda: idle(server))
        spoken = sentences_spoken(server, engine)
        assert spoken < 2 * LONGEST_SENTENCES
        assert disconnects(server) == 2
        async with connect(tls_endpoint) as client:
            after = await client.get(sse_path("One more sentence."))
            assert await after.wait_response() == 200
            assert (await SseReader(after).rest())[-1] == ("done", {"status": "complete"})
        assert sentences_spoken(server, engine) == spoken + 1


async def test_a_client_that_stops_reading_holds_back_synthesis(h2c_endpoint: Endpoint) -> None:
    """A client that stops reading slows its own stream: the server does not speak (and buffer) the whole text.

    Over HTTP/1.1 this holds (TCP backpressure stops the stream after a few
    sentences), and the pool is built on it: "a slow reader slows its own
    stream". Over HTTP/2 the client's stream window (64 KiB here) is the
    backpressure, which Hypercorn 0.18 ignores unless tts_trio.server.hypercorn_fixes.h2_flow_control
    is installed (the app does so).
    """
    server = h2c_endpoint.server
    total = 200
    with trio.fail_after(60):
        async with connect(h2c_endpoint) as client:
            stream = await client.get(sse_path(" ".join([PARAGRAPH] * (total // 10))))
            assert await stream.wait_response() == 200
            await SseReader(stream).until_audio(1)
            # From here on nothing is read. espeak-ng speaks the whole text in well under a second
            # when nothing holds it back (ten times that on a loaded machine is still inside the
            # window); with backpressure it stops after a few sentences and stays there.
            with trio.move_on_after(6):
                await eventually(lambda: sentences_spoken(server, None) == total, within=math.inf)
            assert sentences_spoken(server, None) < total // 4
            assert server.service.active_streams == 1
            await stream.reset()
        await eventually(lambda: idle(server))


# -- WebSocket over HTTP/2 (RFC 8441) ------------------------------------------------------


async def test_ws_over_h2_handshake_and_ping(endpoint: Endpoint) -> None:
    """Extended CONNECT opens the WebSocket (200, no upgrade) over h2c and over TLS, and ping is answered."""
    with trio.fail_after(30):
        async with connect(endpoint) as client:
            ws = await open_websocket(client, "/v1/tts/stream")
            assert ws.stream.status == 200
            await ws.send_json({"action": "ping"})
            assert await ws.get_json() == {"type": "pong"}
            await ws.send_json({"action": "sing"})
            assert (await ws.get_json())["code"] == "unknown_action"  # the socket stays open after an error
            await ws.send_json({"action": "ping"})
            assert await ws.get_json() == {"type": "pong"}
            await ws.close()
            assert not client.lost


async def test_ws_over_h2_generate_yields_wav_messages_until_done(h2c_endpoint: Endpoint) -> None:
    """A generation over a WebSocket-over-HTTP/2 stream: start, WAV messages, metrics, done."""
    with trio.fail_after(30):
        async with connect(h2c_endpoint) as client:
            ws = await open_websocket(client, "/v1/tts/stream")
            await ws.send_json({"action": "generate", "text": PARAGRAPH, "request_id": "para"})
            messages = await receive_until(ws, "done")
    texts = [json.loads(message) for message in messages if isinstance(message, str)]
    assert texts[0]["type"] == "start" and texts[0]["request_id"] == "para"
    assert [text["type"] for text in texts[-2:]] == ["metrics", "done"]
    audio = [message for message in messages if isinstance(message, bytes)]
    assert sum(len(wav_frames(message)) for message in audio) / 44100 > 10


async def test_ws_over_h2_ping_is_answered_during_a_generation(h2c_endpoint: Endpoint) -> None:
    """A ping gets its pong between audio messages, before the generation is done."""
    with trio.fail_after(30):
        async with connect(h2c_endpoint) as client:
            ws = await open_websocket(client, "/v1/tts/stream")
            await ws.send_json({"action": "generate", "text": LONGEST_TEXT})
            assert (await ws.get_json())["type"] == "start"
            assert isinstance(await ws.get_message(), bytes)  # audio is flowing
            await ws.send_json({"action": "ping"})
            messages = await receive_until(ws, "pong")
            kinds = [json.loads(message)["type"] for message in messages if isinstance(message, str)]
            assert "done" not in kinds
            await ws.send_json({"action": "stop"})
            await receive_until(ws, "stopped")
    await eventually(lambda: idle(h2c_endpoint.server))


async def test_ws_over_h2_stop_sends_no_audio_after_stopped_and_the_socket_stays_usable(
    h2c_endpoint: Endpoint,
) -> None:
    """``stop`` ends the running generation: ``stopped``, then nothing of it; the next generate runs to done."""
    server = h2c_endpoint.server
    with trio.fail_after(30):
        async with connect(h2c_endpoint) as client:
            ws = await open_websocket(client, "/v1/tts/stream")
            await ws.send_json({"action": "generate", "text": LONGEST_TEXT, "request_id": "long"})
            assert (await ws.get_json())["request_id"] == "long"
            assert isinstance(await ws.get_message(), bytes)
            assert isinstance(await ws.get_message(), bytes)
            await ws.send_json({"action": "stop"})
            before_stop = await receive_until(ws, "stopped")
            assert json.loads(before_stop[-1]) == {"type": "stopped", "request_id": "long"}
            assert all(json.loads(m)["type"] != "done" for m in before_stop if isinstance(m, str))
            await eventually(lambda: idle(server))
            await ws.send_json({"action": "generate", "text": "After the stop.", "request_id": "next"})
            after = await receive_until(ws, "done")
            # The very next message is the new generation's start: no audio of "long" came after "stopped".
            assert isinstance(after[0], str) and json.loads(after[0])["type"] == "start"
            assert json.loads(after[0])["request_id"] == "next"
            assert all(json.loads(m).get("request_id") == "next" for m in after if isinstance(m, str))
            assert [wav_frames(m) for m in after if isinstance(m, bytes)]
    await eventually(lambda: idle(server))


@pytest.mark.parametrize("engine_kind", ["paced", "espeak-ng"])
async def test_ws_over_h2_stream_reset_stops_synthesis_and_the_connection_lives_on(
    h2c_endpoint: Endpoint, engine_kind: str
) -> None:
    """Resetting the CONNECT stream of a WebSocket mid-generation is a disconnect: synthesis stops."""
    server = h2c_endpoint.server
    engine = await counting_engine_for(server, engine_kind)
    with trio.fail_after(60):
        async with connect(h2c_endpoint) as client:
            ws = await open_websocket(client, "/v1/tts/stream")
            await ws.send_json({"action": "generate", "text": LONGEST_TEXT})
            assert (await ws.get_json())["type"] == "start"
            assert isinstance(await ws.get_message(), bytes)
            assert server.service.active_streams == 1
            await ws.stream.reset()
            await eventually(lambda: idle(server))
            spoken = sentences_spoken(server, engine)
            assert spoken < LONGEST_SENTENCES
            # A new WebSocket on the same connection works, and only its own sentence is spoken.
            again = await open_websocket(client, "/v1/tts/stream")
            await again.send_json({"action": "generate", "text": "One more sentence."})
            await receive_until(again, "done")
            assert sentences_spoken(server, engine) == spoken + 1
            assert not client.lost


async def test_closing_a_ws_over_h2_leaves_the_other_streams_on_its_connection_running(
    h2c_endpoint: Endpoint,
) -> None:
    """A WebSocket closed cleanly over HTTP/2 ends only its own stream (hypercorn issue #329).

    The client's close frame makes Hypercorn forget the stream at once, but
    the END_STREAM that follows it is still DATA for that stream: unguarded,
    Hypercorn 0.18 raises KeyError on it and the whole connection goes down,
    cutting the SSE stream beside it. tts_trio.server.hypercorn_fixes.h2_closed_stream_data
    drops such data instead; the conftest guard fails this test if containment logs anything.
    """
    server = h2c_endpoint.server
    with trio.fail_after(60):
        async with connect(h2c_endpoint) as client:
            ws = await open_websocket(client, "/v1/tts/stream")
            await ws.send_json({"action": "ping"})
            assert await ws.get_json() == {"type": "pong"}
            sse = await client.get(sse_path(" ".join([PARAGRAPH] * 5)))
            assert await sse.wait_response() == 200
            reader = SseReader(sse)
            head = await reader.until_audio(1)  # the SSE stream is running, held back by its window
            await ws.close()
            with pytest.raises(WebSocketClosed):  # the server answers the close frame, then ends the stream
                await ws.get_message()
            assert await ws.stream.read_all() == b""
            events = head + await reader.rest()
            assert events[-1] == ("done", {"status": "complete"})
            assert events[-2][1]["sentences"] == 50
            status, health = await h2_json(client, "/health")  # the connection still carries new streams
            assert status == 200 and health["active_streams"] == 0
            assert not client.lost
    await eventually(lambda: idle(server))


# -- Many streams on one connection ----------------------------------------------------------


async def test_streams_are_multiplexed_on_one_connection(h2c_endpoint: Endpoint) -> None:
    """Four SSE streams, a health check, a generate and a WebSocket run at once on one HTTP/2 connection.

    Each SSE stream stops at a gated sentence, holding a slot: four slots
    busy at once prove four streams running together on the one
    connection. Meanwhile a generate and a WebSocket generation complete
    beside them; then the gate opens and every SSE stream ends with exactly
    its own audio (each chunk of the test engine names its sentence).
    """
    server = h2c_endpoint.server
    gate = Gate()
    pool = await install_engines(server, [GatedEngine(gate) for _ in range(6)])
    texts = [[f"Stream {i} starts here.", f"Wait for stream {i}.", f"Stream {i} ends here."] for i in range(4)]
    try:
        with trio.fail_after(30):
            async with connect(h2c_endpoint) as client:
                streams = [await client.get(sse_path(" ".join(text))) for text in texts]
                readers = [SseReader(stream) for stream in streams]
                heads = [await reader.until_audio(1) for reader in readers]
                await eventually(lambda: gate.arrived == 4)  # all four streams at the gate together
                status, health = await h2_json(client, "/health")
                assert status == 200
                assert (health["active_streams"], health["slots"]["in_use"]) == (4, 4)
                # A generate and a WebSocket generation at the same time, beside the waiting streams.
                generate = await client.post_json("/v1/tts/generate", {"text": "Between the streams."})
                ws = await open_websocket(client, "/v1/tts/stream")
                await ws.send_json({"action": "generate", "text": "Over a WebSocket."})
                ws_messages: list[str | bytes] = []

                async def websocket_side() -> None:
                    ws_messages.extend(await receive_until(ws, "done"))

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(websocket_side)
                    assert await generate.wait_response() == 200
                    generated = wav_frames(await generate.read_all(), rate=16000)
                assert paced_chunks(generated) == [paced_text("Between the streams.")] * 2
                ws_audio = b"".join(wav_frames(m, rate=16000) for m in ws_messages if isinstance(m, bytes))
                assert paced_chunks(ws_audio) == [paced_text("Over a WebSocket.")] * 2
                assert (server.service.active_streams, pool.statistics().in_use) == (4, 4)  # still waiting
                gate.open()
                results: dict[int, list[tuple[str, Any]]] = {}

                async def finish(index: int) -> None:
                    results[index] = heads[index] + await readers[index].rest()

                async with trio.open_nursery() as nursery:
                    for index in range(4):
                        nursery.start_soon(finish, index)
                assert len({stream.stream_id for stream in [*streams, generate, ws.stream]}) == 6
                assert not client.lost
    finally:
        gate.open()
    assert sorted(results) == [0, 1, 2, 3]
    for index, events in results.items():
        assert events[-1] == ("done", {"status": "complete"})
        pcm = wav_frames(joined_sse_audio(events), rate=16000, exact_header=False)
        assert paced_chunks(pcm) == [paced_text(sentence) for sentence in texts[index] for _ in range(2)]
    await eventually(lambda: idle(server))


async def test_concurrent_streams_on_one_connection_carry_intact_real_audio(h2c_endpoint: Endpoint) -> None:
    """With espeak-ng: SSE streams of different lengths, a generate and a WebSocket at once on one connection.

    Their DATA frames interleave on the wire; each stream must come out
    whole: contiguous indexes, the byte count its own metrics report, the
    sentence count of its own text, and a playable file.
    """
    server = h2c_endpoint.server
    sse_results: dict[int, list[tuple[str, Any]]] = {}
    with trio.fail_after(60):
        async with connect(h2c_endpoint) as client:

            async def sse(paragraphs: int) -> None:
                stream = await client.get(sse_path(" ".join([PARAGRAPH] * paragraphs)))
                assert await stream.wait_response() == 200
                sse_results[paragraphs] = await SseReader(stream).rest()

            async def generate() -> None:
                stream = await client.post_json("/v1/tts/generate", {"text": PARAGRAPH})
                assert await stream.wait_response() == 200
                assert len(wav_frames(await stream.read_all())) / 44100 > 10

            async def websocket() -> None:
                ws = await open_websocket(client, "/v1/tts/stream")
                await ws.send_json({"action": "generate", "text": PARAGRAPH})
                messages = await receive_until(ws, "done")
                assert sum(len(wav_frames(m)) for m in messages if isinstance(m, bytes)) / 44100 > 10

            async with trio.open_nursery() as nursery:
                for paragraphs in (1, 2, 3):
                    nursery.start_soon(sse, paragraphs)
                nursery.start_soon(generate)
                nursery.start_soon(websocket)
            assert not client.lost
    assert sorted(sse_results) == [1, 2, 3]
    for paragraphs, events in sse_results.items():
        assert events[-1] == ("done", {"status": "complete"})
        assert events[-2][1]["sentences"] == 10 * paragraphs
        wav_frames(joined_sse_audio(events), exact_header=False)
    await eventually(lambda: idle(server))


async def test_httpx_multiplexes_concurrent_requests_on_one_tls_connection(tls_endpoint: Endpoint) -> None:
    """An ordinary HTTP/2 client's concurrent requests (generate, SSE, health) all succeed over one connection."""
    server = tls_endpoint.server
    responses: list[httpx.Response] = []
    local_ports: set[int] = set()
    with trio.fail_after(60):
        async with httpx.AsyncClient(
            base_url=server.base_url, http2=True, verify=tls_endpoint.verify, timeout=30
        ) as http:

            async def call(request: httpx.Request) -> None:
                response = await http.send(request)
                local_ports.add(response.extensions["network_stream"].get_extra_info("client_addr")[1])
                responses.append(response)

            async with trio.open_nursery() as nursery:
                for _ in range(2):
                    nursery.start_soon(
                        call, http.build_request("GET", "/v1/tts/stream-sse", params={"text": PARAGRAPH})
                    )
                    nursery.start_soon(call, http.build_request("POST", "/v1/tts/generate", json={"text": PARAGRAPH}))
                nursery.start_soon(call, http.build_request("GET", "/health"))
    assert len(responses) == 5
    assert all((r.status_code, r.http_version) == (200, "HTTP/2") for r in responses)
    # One TLS connection carried them all: the same local port for every response.
    assert len(local_ports) == 1
    for response in responses:
        if response.headers["content-type"].startswith("text/event-stream"):
            assert parse_events(response.text)[-1] == ("done", {"status": "complete"})
        elif response.headers["content-type"] == "audio/wav":
            wav_frames(response.content)
    await eventually(lambda: idle(server))
