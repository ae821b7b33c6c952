"""The Wyoming listener, spoken to by the reference client (``wyoming.client.AsyncTcpClient``).

The client is asyncio, the server trio: each client conversation runs in
its own asyncio loop on a worker thread, while the test's trio loop keeps
the live server (Hypercorn and the Wyoming listener in one nursery) running.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from array import array
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest
import trio
from wyoming.audio import AudioChunk, AudioStart
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event, async_read_event
from wyoming.info import Describe, Info
from wyoming.ping import Ping
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeVoice,
)

from tests.support.live import PARAGRAPH, LiveServer, eventually, start_live_server
from tests.support.processes import BIN, free_port, spawn, wait_healthy
from tts_trio.settings import Settings
from tts_trio.wyoming.listener import listener_of

T = TypeVar("T")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The shared test settings with the Wyoming listener on a free port."""
    return Settings.load(
        {"voices_path": tmp_path / "voices", "slots": 2, "max_queue_wait": 2.0, "wyoming_port": 0}, environ={}
    )


def wyoming_port(server: LiveServer) -> int:
    listener = listener_of(server.app)
    assert listener is not None
    return listener.port


async def in_asyncio(conversation: Callable[[], Awaitable[T]]) -> T:
    """Run an asyncio conversation to its end on a worker thread (the reference client is asyncio)."""

    def run() -> T:
        async def main() -> T:
            return await conversation()

        return asyncio.run(main())

    return await trio.to_thread.run_sync(run)


async def read_until(client: AsyncTcpClient, last: str) -> list[Event]:
    events: list[Event] = []
    while True:
        event = await client.read_event()
        assert event is not None, f"the connection closed before {last!r}; got {[e.type for e in events]}"
        events.append(event)
        if event.type == last:
            return events


def audio_of(events: list[Event]) -> tuple[AudioStart, bytes]:
    """The audio-start and the PCM of a response, checking its shape: start, chunks, stop."""
    types = [event.type for event in events]
    assert types[0] == "audio-start", types
    assert "audio-stop" in types, types
    stop = types.index("audio-stop")
    assert set(types[1:stop]) == {"audio-chunk"}, types
    start = AudioStart.from_event(events[0])
    chunks = [AudioChunk.from_event(event) for event in events[1:stop]]
    assert all((c.rate, c.width, c.channels) == (start.rate, start.width, start.channels) for c in chunks)
    return start, b"".join(chunk.audio for chunk in chunks)


def assert_speech(start: AudioStart, pcm: bytes, *, min_seconds: float, max_seconds: float) -> None:
    assert (start.width, start.channels) == (2, 1)
    assert len(pcm) % start.width == 0
    seconds = len(pcm) / (start.rate * start.width)
    assert min_seconds < seconds < max_seconds
    samples = array("h", pcm)
    assert max(abs(sample) for sample in samples) > 1000, "the audio is silence"


async def test_describe_lists_the_engines_voices_with_languages_and_streaming(live_server: LiveServer) -> None:
    port = wyoming_port(live_server)

    async def conversation() -> Info:
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Describe().event())
            event = await client.read_event()
            assert event is not None and Info.is_type(event.type)
            return Info.from_event(event)

    info = await in_asyncio(conversation)
    (program,) = info.tts
    assert program.supports_synthesize_streaming
    assert program.installed
    voices = {voice.name: voice for voice in program.voices}
    assert len(voices) == len(live_server.service.voices)
    assert voices["en-us"].languages == ["en-us"]
    assert all(voice.languages for voice in program.voices)


async def test_synthesize_sends_audio_start_chunks_and_stop(live_server: LiveServer) -> None:
    port = wyoming_port(live_server)
    text = "Hello from the Wyoming server. This is the second sentence."

    async def conversation() -> list[Event]:
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Synthesize(text=text, voice=SynthesizeVoice(name="en-us")).event())
            events = await read_until(client, "audio-stop")
            # The connection stays usable after a synthesis.
            await client.write_event(Ping(text="again").event())
            pong = await client.read_event()
            assert pong is not None and pong.type == "pong" and pong.data["text"] == "again"
            return events

    events = await in_asyncio(conversation)
    start, pcm = audio_of(events)
    assert start.rate == live_server.service.pool.audio_format.sample_rate
    assert_speech(start, pcm, min_seconds=1.5, max_seconds=15)
    # Raw PCM in chunks of at most 1024 samples, more than one: it streamed.
    sizes = [len(AudioChunk.from_event(event).audio) for event in events if event.type == "audio-chunk"]
    assert len(sizes) > 1 and max(sizes) <= 1024 * start.width
    await eventually(lambda: live_server.service.active_streams == 0)


async def test_synthesize_by_language_picks_a_voice_of_it(live_server: LiveServer) -> None:
    port = wyoming_port(live_server)

    async def conversation() -> list[Event]:
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Synthesize(text="Guten Tag.", voice=SynthesizeVoice(language="de_DE")).event())
            return await read_until(client, "audio-stop")

    start, pcm = audio_of(await in_asyncio(conversation))
    assert_speech(start, pcm, min_seconds=0.3, max_seconds=10)


async def test_streaming_synthesis_speaks_before_the_text_ends_and_ends_with_synthesize_stopped(
    live_server: LiveServer,
) -> None:
    port = wyoming_port(live_server)

    async def conversation() -> list[Event]:
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(SynthesizeStart(voice=SynthesizeVoice(name="en-us")).event())
            for piece in ("The first sent", "ence is complete. The sec"):
                await client.write_event(SynthesizeChunk(text=piece).event())
            # The first sentence's end is certain now: its audio comes while the text is still open.
            early = await read_until(client, "audio-chunk")
            assert [event.type for event in early] == ["audio-start", "audio-chunk"]
            await client.write_event(SynthesizeChunk(text="ond one ends here.").event())
            # Home Assistant also sends the whole text for servers that do not stream; it is not spoken twice.
            whole = "The first sentence is complete. The second one ends here."
            await client.write_event(Synthesize(text=whole).event())
            await client.write_event(SynthesizeStop().event())
            return early + await read_until(client, "synthesize-stopped")

    events = await in_asyncio(conversation)
    assert events[-1].type == "synthesize-stopped"
    assert events[-2].type == "audio-stop"
    assert [event.type for event in events].count("audio-start") == 1
    start, pcm = audio_of(events)
    assert_speech(start, pcm, min_seconds=1.5, max_seconds=15)
    await eventually(lambda: live_server.service.active_streams == 0)


async def raw_conversation(port: int, data: bytes, answers: int) -> tuple[list[Event], bool]:
    """Write raw bytes, read ``answers`` events with the reference reader; and whether the server then closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        events: list[Event] = []
        for _ in range(answers):
            event = await async_read_event(reader)
            assert event is not None, f"the connection closed after {[e.type for e in events]}"
            events.append(event)
        writer.write_eof()
        try:
            closed = await reader.read() == b""
        except ConnectionResetError:
            closed = True
        return events, closed
    finally:
        writer.close()


def describe_bytes() -> bytes:
    return b'{"type": "describe"}\n'


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        (b"this is not json\n", "not valid JSON"),
        (b"[1, 2, 3]\n", "JSON object"),
        (b'{"data": {}}\n', "type"),
        (b'{"type": "transcribe"}\n', "unsupported event type"),
        (b'{"type": "synthesize", "data": {"voice": {}}}\n', "malformed"),
        (b'{"type": "synthesize", "data": {"text": "   "}}\n', ""),
        (b'{"type": "synthesize-chunk", "data": {"text": "no start"}}\n', "without synthesize-start"),
        (b'{"type": "describe", "data_length": 3}\nxyz', "not valid JSON"),
    ],
)
async def test_malformed_or_unknown_events_get_an_error_and_the_connection_goes_on(
    live_server: LiveServer, bad: bytes, fragment: str
) -> None:
    port = wyoming_port(live_server)
    events, _ = await in_asyncio(lambda: raw_conversation(port, bad + describe_bytes(), 2))
    error, info = events
    assert error.type == "error", error
    assert fragment in Error.from_event(error).text
    assert info.type == "info"


@pytest.mark.parametrize(
    "bad",
    [
        b'{"type": "synthesize", "data_length": 999999999999}\n',
        b'{"type": "synthesize", "payload_length": -1}\n',
        b'{"type": "synthesize", "data_length": "12"}\n',
        b"x" * (1 << 21),  # a header line with no end
    ],
    ids=["huge-data", "negative-payload", "string-length", "endless-line"],
)
async def test_an_event_whose_framing_is_lost_gets_an_error_then_close_and_the_listener_stays(
    live_server: LiveServer, bad: bytes
) -> None:
    port = wyoming_port(live_server)
    events, closed = await in_asyncio(lambda: raw_conversation(port, bad, 1))
    assert events[0].type == "error" and Error.from_event(events[0]).code == "malformed_event"
    assert closed
    again, _ = await in_asyncio(lambda: raw_conversation(port, describe_bytes(), 1))
    assert again[0].type == "info"
    errors = live_server.service.metrics.registry.get_sample_value(
        "tts_protocol_errors_total", {"protocol": "wyoming", "code": "malformed_event"}
    )
    assert errors == 1


async def test_a_client_that_disconnects_mid_synthesis_cancels_it(live_server: LiveServer) -> None:
    port = wyoming_port(live_server)
    service = live_server.service
    cancelled = service.metrics.cancellations.labels("disconnect")
    before = cancelled._value.get()

    async def conversation() -> None:
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Synthesize(text=PARAGRAPH * 3).event())
            await read_until(client, "audio-chunk")
        # Leaving the block closes the socket while the paragraph is still being spoken.

    await in_asyncio(conversation)
    await eventually(lambda: service.active_streams == 0)
    await eventually(lambda: service.admission.running == 0 and service.pool.statistics().in_use == 0)
    assert cancelled._value.get() == before + 1


async def test_a_hundred_clients_describing_and_leaving_leave_nothing_behind(live_server: LiveServer) -> None:
    port = wyoming_port(live_server)
    service = live_server.service

    async def one(index: int) -> None:
        async with AsyncTcpClient("127.0.0.1", port) as client:
            if index % 5:  # every fifth leaves without a word
                await client.write_event(Describe().event())
                event = await client.read_event()
                assert event is not None and event.type == "info"

    async def conversation() -> None:
        for start in range(0, 100, 20):
            await asyncio.gather(*(one(index) for index in range(start, start + 20)))

    await in_asyncio(conversation)
    listener = listener_of(live_server.app)
    assert listener is not None
    await eventually(lambda: listener.connections == 0)
    assert service.active_streams == 0 and service.admission.running == 0
    assert service.pool.statistics().in_use == 0

    async def still_up() -> Event | None:
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Describe().event())
            answer: Event | None = await client.read_event()
            return answer

    event = await in_asyncio(still_up)
    assert event is not None and event.type == "info"


async def test_wyoming_streams_are_counted_under_their_protocol(live_server: LiveServer) -> None:
    port = wyoming_port(live_server)

    async def conversation() -> None:
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Synthesize(text="Counted.").event())
            await read_until(client, "audio-stop")

    await in_asyncio(conversation)
    metrics = live_server.service.metrics
    assert metrics.time_to_first_audio.labels("wyoming")._sum.get() > 0
    assert metrics.requests.labels("wyoming", "synthesize", "ok")._value.get() == 1


@pytest.mark.skipif(sys.platform != "linux", reason="signals as on Linux")
async def test_serve_with_wyoming_port_answers_describe_and_stops_on_sigterm(tmp_path: Path) -> None:
    port, wyoming = free_port(), free_port()
    env = {"TTS_SLOTS": "1", "TTS_VOICES_PATH": str(tmp_path)}
    process = spawn([str(BIN), "serve", "--port", str(port), "--wyoming-port", str(wyoming)], env)
    try:
        await wait_healthy(f"http://127.0.0.1:{port}", process)

        async def conversation() -> list[Event]:
            async with AsyncTcpClient("127.0.0.1", wyoming) as client:
                await client.write_event(Describe().event())
                info = await client.read_event()
                assert info is not None
                await client.write_event(Synthesize(text="Hello.").event())
                return [info, *await read_until(client, "audio-stop")]

        events = await in_asyncio(conversation)
        assert events[0].type == "info"
        audio_of(events[1:])
        process.send_signal(signal.SIGTERM)
        output, _ = await trio.to_thread.run_sync(process.communicate, None, 20)
        assert process.returncode == 0, output.decode()
        assert f"Wyoming listener on 127.0.0.1 port {wyoming}" in output.decode()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def test_on_drain_an_idle_connection_is_closed_and_a_running_synthesis_ends_with_audio_stop(
    settings: Settings, nursery: trio.Nursery
) -> None:
    server, stop = await start_live_server(nursery, settings, graceful_timeout=10.0)
    port = wyoming_port(server)
    ready = trio.Event()
    token = trio.lowlevel.current_trio_token()

    async def conversation() -> tuple[Event | None, list[Event]]:
        async with (
            AsyncTcpClient("127.0.0.1", port) as idle,
            AsyncTcpClient("127.0.0.1", port) as busy,
        ):
            await busy.write_event(Synthesize(text="A sentence still being spoken when the drain begins.").event())
            events = await read_until(busy, "audio-chunk")
            trio.from_thread.run_sync(ready.set, trio_token=token)
            events += await read_until(busy, "audio-stop")
            closed: Event | None = await idle.read_event()  # None: the server closed the idle one
            return closed, events

    result: tuple[Event | None, list[Event]] | None = None

    async def talk() -> None:
        nonlocal result
        result = await in_asyncio(conversation)

    async with trio.open_nursery() as clients:
        clients.start_soon(talk)
        await ready.wait()
        await stop()
    assert result is not None
    closed, events = result
    assert closed is None
    audio_of(events)
    assert events[-1].type == "audio-stop"
