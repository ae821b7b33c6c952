"""The Wyoming framing against the reference implementation's own reader and writer."""

from __future__ import annotations

import io

import pytest
import trio
import trio.testing
from wyoming.audio import AudioChunk
from wyoming.event import Event, read_event, write_event
from wyoming.tts import Synthesize, SynthesizeVoice

from tts_trio.wyoming.framing import EventReader, FrameLimits, MalformedEvent, encode_event

LIMITS = FrameLimits(max_line_bytes=1024, max_data_bytes=4096, max_payload_bytes=8192)


def reference_bytes(*events: Event) -> bytes:
    buffer = io.BytesIO()
    for event in events:
        write_event(event, buffer)
    return buffer.getvalue()


async def read_all(data: bytes, limits: FrameLimits = LIMITS, piece: int | None = None) -> list[Event]:
    """Our reader over a stream that delivers ``data`` (in ``piece``-byte sends, to split events anywhere)."""
    send, receive = trio.testing.memory_stream_one_way_pair()
    reader = EventReader(receive, limits)
    events: list[Event] = []
    failure: MalformedEvent | None = None
    async with trio.open_nursery() as nursery:

        async def feed() -> None:
            step = piece or len(data) or 1
            for start in range(0, len(data), step):
                await send.send_all(data[start : start + step])
            await send.aclose()

        nursery.start_soon(feed)
        try:
            while (event := await reader.receive()) is not None:
                events.append(event)
        except MalformedEvent as error:
            failure = error
            nursery.cancel_scope.cancel()
    if failure is not None:
        raise failure
    return events


def test_what_we_write_the_reference_reads() -> None:
    chunk = AudioChunk(rate=22050, width=2, channels=1, audio=b"\x01\x02" * 300).event()
    request = Synthesize(text='Grüße, "quoted"\nand a newline.', voice=SynthesizeVoice(name="de")).event()
    stream = io.BytesIO(encode_event(chunk) + encode_event(request) + encode_event(Event("describe")))
    got = [read_event(stream) for _ in range(3)]
    assert got[0] is not None and AudioChunk.from_event(got[0]).audio == b"\x01\x02" * 300
    assert got[1] is not None and Synthesize.from_event(got[1]) == Synthesize.from_event(request)
    assert got[2] is not None and got[2].type == "describe"
    assert read_event(stream) is None


@pytest.mark.parametrize("piece", [None, 1, 7])
async def test_what_the_reference_writes_we_read_however_it_arrives(piece: int | None) -> None:
    chunk = AudioChunk(rate=16000, width=2, channels=1, audio=bytes(range(256)) * 4).event()
    request = Synthesize(text="Hello there.").event()
    events = await read_all(reference_bytes(request, chunk, Event("describe")), piece=piece)
    assert [event.type for event in events] == ["synthesize", "audio-chunk", "describe"]
    assert events[0].data["text"] == "Hello there."
    assert events[1].payload == bytes(range(256)) * 4
    assert events[2].payload is None


async def test_data_in_the_header_and_after_it_are_merged() -> None:
    events = await read_all(b'{"type": "synthesize", "data": {"text": "a", "x": 1}, "data_length": 13}\n{"text": "b"}')
    assert events[0].data == {"text": "b", "x": 1}


async def test_a_client_that_leaves_mid_event_is_the_end_of_the_stream() -> None:
    assert await read_all(b'{"type": "synthesize", "data_length": 50}\n{"te') == []
    assert await read_all(b'{"type": "desc') == []


@pytest.mark.parametrize(
    ("data", "fatal"),
    [
        (b"nonsense\n", False),
        (b'"a string"\n', False),
        (b'{"type": 5}\n', False),
        (b'{"type": "' + b"t" * 65 + b'"}\n', False),
        (b'{"type": "x", "data": [1]}\n', False),
        (b'{"type": "x", "data_length": 2}\n[]', False),
        (b'{"type": "x", "data_length": 1}\n\xff', False),
        (b'{"type": "x", "data_length": 4097}\n', True),
        (b'{"type": "x", "payload_length": 8193}\n', True),
        (b'{"type": "x", "payload_length": true}\n', True),
        (b'{"type": "x", "data_length": 1.5}\n', True),
        (b"y" * 1025 + b"\n", True),
        (b"y" * 5000, True),
    ],
)
async def test_malformed_events_are_refused_before_they_are_buffered(data: bytes, fatal: bool) -> None:
    with pytest.raises(MalformedEvent) as raised:
        await read_all(data)
    assert raised.value.fatal is fatal


async def test_after_a_recoverable_error_the_next_event_is_read() -> None:
    send, receive = trio.testing.memory_stream_one_way_pair()
    reader = EventReader(receive, LIMITS)
    await send.send_all(b'not json\n\n{"type": "x", "data_length": 2}\n[]{"type": "describe"}\n')
    await send.aclose()
    for _ in range(2):
        with pytest.raises(MalformedEvent):
            await reader.receive()
    event = await reader.receive()
    assert event is not None and event.type == "describe"
    assert await reader.receive() is None


def test_limits_leave_room_for_the_longest_text_escaped() -> None:
    limits = FrameLimits.for_text(20_000)
    longest = encode_event(Synthesize(text="\u2028" * 20_000).event())
    header, _, data = longest.partition(b"\n")
    assert len(header) <= limits.max_line_bytes and len(data) <= limits.max_data_bytes
