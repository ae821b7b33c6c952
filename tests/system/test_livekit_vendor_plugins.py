"""LiveKit's Cartesia and Deepgram plugins, unchanged but for their base URL, against the real server.

``livekit-plugins-cartesia`` and ``livekit-plugins-deepgram`` are used the
way their docs show (``cartesia.TTS(...)``, ``deepgram.TTS(...)``, then an
agent calls ``synthesize(text)`` or ``stream()``); the only thing that
points them here is ``base_url``. What they send, from their source
(1.8.9):

Cartesia (``base_url`` is the origin; paths are appended):
  * ``synthesize``: ``POST {base_url}/tts/bytes`` with ``X-API-Key`` and
    ``Cartesia-Version``, JSON ``model_id``, ``voice {"mode": "id", "id"}``,
    ``output_format {"container": "raw", "encoding": "pcm_s16le",
    "sample_rate"}``, ``language``, ``transcript``; the body is read as raw
    s16le at the rate it asked for.
  * ``stream``: ``WS {base_url with ws}/tts/websocket?cartesia_version=...``
    with ``X-API-Key``, pooled across streams; per sentence one message with
    the same options plus ``context_id``, ``transcript`` (sentence + " "),
    ``continue: true``, ``max_buffer_delay_ms: 0`` and ``add_timestamps``,
    then ``transcript: " "`` with ``continue: false``. It reads ``chunk``
    (base64 ``data``), ``timestamps`` (``word_timestamps``), ``done`` and
    ``error``, and drops messages of other context ids.

Deepgram (``base_url`` is the whole ``/v1/speak`` URL):
  * ``synthesize``: ``POST {base_url}?encoding=linear16&container=none&model=
    ...&sample_rate=...&mip_opt_out=false`` with ``Authorization: Token``,
    JSON ``{"text"}``; the body is read as raw s16le.
  * ``stream``: ``WS {base_url with ws}?encoding=linear16&model=...&
    sample_rate=...&mip_opt_out=false`` with ``Authorization: Token``, pooled;
    per word ``{"type": "Speak", "text": word + " "}``, at each flush
    ``{"type": "Flush"}`` and it waits for ``Flushed``; binary frames are
    audio, ``Metadata`` / ``Warning`` / ``Error`` are read. Closing the pool
    sends ``Flush`` and ``Close`` and waits a second for an answer.

Each client runs in a worker thread with its own asyncio loop, the server
in the test's trio loop. ``http_session`` is given because outside an
agent job there is no session for the plugins to find.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any

import aiohttp
import attrs
import pytest
import trio
from livekit.agents import APIConnectOptions, APIStatusError
from livekit.agents import tts as livekit_tts
from livekit.agents.types import USERDATA_TIMED_TRANSCRIPT

# Plugins register themselves on import, which only the main thread may do.
from livekit.plugins import cartesia as livekit_cartesia
from livekit.plugins import deepgram as livekit_deepgram

from tests.support.live import LiveServer, eventually, start_live_server
from tests.system.test_voice_agent_clients import in_asyncio, rms
from tts_trio.settings import Settings

SHORT = "Hello there."
LONG = "Hello there. This sentence is a good deal longer than the first one, so it takes longer to say."
#: What an LLM writes, as LiveKit pushes it: a word at a time, punctuation attached.
WORDS = [
    "LiveKit",
    "streams",
    "the",
    "text",
    "word",
    "by",
    "word,",
    "as",
    "a",
    "language",
    "model",
    "writes",
    "it.",
    "Then",
    "it",
    "flushes.",
]
SECOND = ["A", "second", "reply", "follows", "the", "first", "one."]
KEY = "vendor-plugin-key"
VOICE = "en-us+f3"  # one of espeak-ng's voices here (GET /v1/voices)


# -- helpers ---------------------------------------------------------------------------------
@attrs.frozen
class Heard:
    """What a plugin handed the agent: the PCM, the frames' shapes, segment ids and timed words."""

    pcm: bytes
    shapes: frozenset[tuple[int, int]]
    segments: tuple[str, ...]
    words: tuple[Any, ...] = ()

    def seconds(self, rate: int) -> float:
        return len(self.pcm) / 2 / rate


async def heard(events: AsyncIterator[livekit_tts.SynthesizedAudio]) -> Heard:
    pcm = bytearray()
    shapes: set[tuple[int, int]] = set()
    segments: list[str] = []
    words: list[Any] = []
    async for event in events:
        frame = event.frame
        pcm += bytes(frame.data)
        if frame.samples_per_channel:
            shapes.add((frame.sample_rate, frame.num_channels))
        if event.segment_id and event.segment_id not in segments:
            segments.append(event.segment_id)
        words += frame.userdata.get(USERDATA_TIMED_TRANSCRIPT) or []
    return Heard(bytes(pcm), frozenset(shapes), tuple(segments), tuple(words))


def assert_speech(audio: Heard, rate: int) -> None:
    assert audio.shapes == {(rate, 1)}
    assert audio.seconds(rate) > 0.3
    assert rms(audio.pcm) > 300, "the audio is silent"


def idle(server: LiveServer) -> bool:
    service = server.service
    slots = service.pool.statistics()
    admission = service.admission
    return (slots.in_use, slots.waiting, service.active_streams, admission.running, admission.waiting) == (0,) * 5


@pytest.fixture
async def server(live_server: LiveServer) -> AsyncIterator[LiveServer]:
    yield live_server
    await eventually(lambda: idle(live_server))


@pytest.fixture
async def keyed_server(settings: Settings, nursery: trio.Nursery) -> AsyncIterator[LiveServer]:
    server, stop = await start_live_server(nursery, attrs.evolve(settings, api_keys=KEY))
    try:
        yield server
        await eventually(lambda: idle(server))
    finally:
        await stop()


Plugin = livekit_cartesia.TTS | livekit_deepgram.TTS


def cartesia_tts(server: LiveServer, session: aiohttp.ClientSession, **options: Any) -> livekit_cartesia.TTS:
    options = {"api_key": "not-needed", **options}
    return livekit_cartesia.TTS(base_url=server.base_url, http_session=session, **options)


def deepgram_tts(server: LiveServer, session: aiohttp.ClientSession, **options: Any) -> livekit_deepgram.TTS:
    options = {"api_key": "not-needed", **options}
    return livekit_deepgram.TTS(base_url=server.base_url + "/v1/speak", http_session=session, **options)


Make = Callable[..., Plugin]


async def with_plugin(
    server: LiveServer, make: Callable[[aiohttp.ClientSession], Plugin], use: Callable[[Plugin], Awaitable[Any]]
) -> Any:
    """Run ``use(plugin)`` in an asyncio thread, with the plugin's own HTTP session, closing both after."""

    async def run() -> Any:
        async with aiohttp.ClientSession() as session:
            plugin = make(session)
            try:
                return await use(plugin)
            finally:
                await plugin.aclose()

    return await in_asyncio(run)


async def speak_whole(plugin: Plugin, *texts: str) -> list[Heard]:
    return [await heard(plugin.synthesize(text)) for text in texts]


async def speak_streamed(plugin: Plugin, words: list[str]) -> Heard:
    """One stream, as an agent uses it: the words as they come, then ``flush`` and ``end_input``.

    LiveKit (1.8) speaks one segment per stream: text pushed after a flush
    is dropped with a warning, so every reply gets a new stream (the
    plugins' pooled socket makes that cheap).
    """
    stream = plugin.stream()
    try:
        for word in words:
            stream.push_text(word + " ")
        stream.flush()
        stream.end_input()
        return await heard(stream)
    finally:
        await stream.aclose()


MAKERS = pytest.mark.parametrize(
    "make", [pytest.param(cartesia_tts, id="cartesia"), pytest.param(deepgram_tts, id="deepgram")]
)


# -- synthesize: Cartesia's POST /tts/bytes, Deepgram's POST /v1/speak --------------------------------
@MAKERS
@pytest.mark.parametrize("rate", [16000, 24000, 48000])
async def test_synthesize_speaks_at_the_asked_rate(server: LiveServer, make: Make, rate: int) -> None:
    async def use(plugin: Plugin) -> list[Heard]:
        return await speak_whole(plugin, SHORT, LONG)

    short, long = await with_plugin(server, lambda session: make(server, session, sample_rate=rate), use)
    assert_speech(short, rate)
    assert_speech(long, rate)
    assert long.seconds(rate) > short.seconds(rate) + 1.0
    assert 0.5 < short.seconds(rate) < 4.0 and long.seconds(rate) < 12.0


@MAKERS
async def test_the_same_text_lasts_as_long_at_every_rate(server: LiveServer, make: Make) -> None:
    """The frames say the rate the plugin asked for; the server really resampled to it (same duration)."""

    async def use(plugin: Plugin) -> list[Heard]:
        return await speak_whole(plugin, LONG)

    seconds = []
    for rate in (8000, 22050, 44100):
        (audio,) = await with_plugin(server, partial(make, server, sample_rate=rate), use)
        assert_speech(audio, rate)
        seconds.append(audio.seconds(rate))
    assert max(seconds) - min(seconds) < 0.1, seconds


# -- stream: Cartesia's WS /tts/websocket, Deepgram's WS /v1/speak --------------------------------
@MAKERS
async def test_stream_speaks_text_pushed_word_by_word(server: LiveServer, make: Make) -> None:
    async def use(plugin: Plugin) -> tuple[Heard, Heard, Heard]:
        one = await speak_streamed(plugin, WORDS)
        two = await speak_streamed(plugin, WORDS + SECOND)  # a second stream: the pooled socket again
        short = await speak_streamed(plugin, ["Hi", "there."])
        return one, two, short

    one, two, short = await with_plugin(server, lambda session: make(server, session, sample_rate=24000), use)
    for audio in (one, two, short):
        assert_speech(audio, 24000)
    assert one.seconds(24000) > short.seconds(24000) + 1.5
    assert two.seconds(24000) > one.seconds(24000) + 1.0
    assert 2.0 < one.seconds(24000) < 12.0


async def test_cartesia_stream_word_timestamps_align_with_the_text(server: LiveServer) -> None:
    """``word_timestamps`` is on by default: the plugin matches our words to the text it sent."""

    async def use(plugin: Plugin) -> Heard:
        return await speak_streamed(plugin, WORDS)

    audio = await with_plugin(server, lambda session: cartesia_tts(server, session, sample_rate=16000), use)
    assert_speech(audio, 16000)
    assert len(audio.segments) == 1
    text = "".join(str(word) for word in audio.words)
    assert text.split() == WORDS
    starts = [word.start_time for word in audio.words]
    assert starts == sorted(starts) and starts[0] < 0.5
    assert all(word.end_time >= word.start_time for word in audio.words)
    assert audio.words[-1].end_time <= audio.seconds(16000) + 0.1


@MAKERS
async def test_streams_one_after_another_and_at_once(server: LiveServer, make: Make) -> None:
    """An agent's replies: each its own stream, on a prewarmed socket, and two at once (a second socket)."""

    async def use(plugin: Plugin) -> tuple[list[Heard], list[Heard]]:
        plugin.prewarm()
        replies = [await speak_streamed(plugin, words) for words in (WORDS, SECOND, ["And", "a", "third."])]
        both = await asyncio.gather(speak_streamed(plugin, WORDS), speak_streamed(plugin, SECOND))
        return replies, list(both)

    replies, both = await with_plugin(server, lambda session: make(server, session, sample_rate=16000), use)
    for audio in (*replies, *both):
        assert_speech(audio, 16000)
        assert len(audio.segments) == 1
    assert len({audio.segments for audio in replies}) == 3
    assert abs(both[0].seconds(16000) - replies[0].seconds(16000)) < 0.1
    assert abs(both[1].seconds(16000) - replies[1].seconds(16000)) < 0.1


@MAKERS
async def test_a_reply_cut_off_mid_speech_gives_the_slots_back(server: LiveServer, make: Make) -> None:
    """An agent interrupted by its user closes the stream while audio still comes, then speaks its next reply."""

    async def use(plugin: Plugin) -> tuple[int, Heard, Heard]:
        stream = plugin.stream()
        stream.push_text(" ".join([LONG] * 8))
        stream.flush()
        frames = 0
        async for _ in stream:
            frames += 1
            if frames == 3:
                break
        await stream.aclose()
        after = await speak_streamed(plugin, SECOND)  # the cut-off socket is dropped, a fresh one opened
        return frames, after, await speak_streamed(plugin, SECOND)

    frames, after, again = await with_plugin(server, lambda session: make(server, session, sample_rate=16000), use)
    assert frames == 3
    assert_speech(after, 16000)
    assert abs(after.seconds(16000) - again.seconds(16000)) < 0.1  # nothing of the cut-off reply came along


@pytest.mark.parametrize(
    ("make", "option"), [(cartesia_tts, "voice"), (deepgram_tts, "model")], ids=["cartesia", "deepgram"]
)
async def test_one_of_our_voice_ids_selects_that_voice(server: LiveServer, make: Make, option: str) -> None:
    """Cartesia's ``voice`` and Deepgram's ``model`` name our voices; their own names speak the default voice."""

    async def use(plugin: Plugin) -> tuple[Heard, Heard]:
        (whole,) = await speak_whole(plugin, LONG)
        return whole, await speak_streamed(plugin, LONG.split())

    default = await with_plugin(server, lambda session: make(server, session), use)
    chosen = await with_plugin(server, lambda session: make(server, session, **{option: VOICE}), use)
    for audio in (*default, *chosen):
        assert_speech(audio, 24000)
    assert default[0].pcm != chosen[0].pcm and default[1].pcm != chosen[1].pcm


@pytest.mark.parametrize(
    ("make", "options"),
    [
        (cartesia_tts, {"speed": 1.5, "emotion": "positivity", "volume": 1.2}),  # generation_config on sonic-3
        (deepgram_tts, {"speed": 1.5, "mip_opt_out": True}),  # query parameters
    ],
    ids=["cartesia", "deepgram"],
)
async def test_speed_is_honoured_and_the_other_options_accepted(
    server: LiveServer, make: Make, options: dict[str, Any]
) -> None:
    async def use(plugin: Plugin) -> tuple[Heard, Heard]:
        (whole,) = await speak_whole(plugin, LONG)
        return whole, await speak_streamed(plugin, LONG.split())

    normal = await with_plugin(server, lambda session: make(server, session), use)
    fast = await with_plugin(server, lambda session: make(server, session, **options), use)
    for plain, quick in zip(normal, fast, strict=True):
        assert_speech(quick, 24000)
        assert quick.seconds(24000) < 0.85 * plain.seconds(24000)


# -- keys: X-API-Key (Cartesia's plugin) and Authorization: Token (Deepgram's) --------------------------
@MAKERS
async def test_the_plugins_key_headers_are_accepted(keyed_server: LiveServer, make: Make) -> None:
    async def use(plugin: Plugin) -> tuple[Heard, Heard]:
        (whole,) = await speak_whole(plugin, SHORT)
        return whole, await speak_streamed(plugin, WORDS)

    whole, streamed = await with_plugin(
        keyed_server, lambda session: make(keyed_server, session, api_key=KEY, sample_rate=24000), use
    )
    assert_speech(whole, 24000)
    assert_speech(streamed, 24000)


@MAKERS
async def test_a_wrong_key_is_refused(keyed_server: LiveServer, make: Make) -> None:
    no_retry = APIConnectOptions(max_retry=0, timeout=5)

    async def use(plugin: Plugin) -> list[str]:
        refused = []
        try:
            await heard(plugin.synthesize(SHORT, conn_options=no_retry))
        except APIStatusError as error:
            refused.append(f"rest {error.status_code}")
        stream = plugin.stream(conn_options=no_retry)
        try:
            stream.push_text(SHORT)
            stream.end_input()
            await heard(stream)
        except APIStatusError as error:
            refused.append(f"ws {error.status_code}")
        finally:
            await stream.aclose()
        return refused

    refused = await with_plugin(keyed_server, lambda session: make(keyed_server, session, api_key="wrong"), use)
    assert refused == ["rest 401", "ws 401"]  # the WebSocket is refused at the handshake
