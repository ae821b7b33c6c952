"""The voice-agent frameworks' OpenAI TTS clients against the real server: LiveKit's plugin and Pipecat's service.

Both are asyncio code; each test runs its client in a thread with its own
event loop (``asyncio.run``), the server in the test's trio loop. They are
the clients that exposed the gaps this server closes: LiveKit's plugin
sends ``stream_format: sse`` for every model but tts-1/tts-1-hd and plays
whatever arrives as 24 kHz mono; Pipecat's accepts only OpenAI's thirteen
voice names and reads raw ``pcm`` as 24 kHz.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar, TypeVarTuple

import numpy as np
import pytest
import trio
from livekit.agents import tts as livekit_tts
from livekit.plugins import openai as livekit_openai  # registers itself, which only the main thread may do
from pipecat.frames.frames import ErrorFrame, TTSAudioRawFrame, TTSSpeakFrame
from pipecat.services.openai.tts import VALID_VOICES, OpenAITTSService
from pipecat.tests.utils import run_test

from tests.support.live import LiveServer

T = TypeVar("T")
Ts = TypeVarTuple("Ts")
TEXT = "Hello from the voice agent. This is the second sentence."
OPENAI_RATE = 24000


class _ThreadLoop(asyncio.SelectorEventLoop):
    """An event loop for a worker thread, where signal handlers cannot be installed.

    Pipecat's WorkerRunner (which run_test builds) installs a SIGINT handler
    on its loop, which Python allows only in the main thread; that thread
    runs the server here, and Ctrl-C stays pytest's.
    """

    def add_signal_handler(self, sig: int, callback: Callable[[*Ts], object], *args: *Ts) -> None:
        return None


async def in_asyncio(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run an asyncio coroutine in a worker thread so the trio-served server keeps running."""

    def run() -> T:
        with asyncio.Runner(loop_factory=_ThreadLoop) as runner:
            return runner.run(make())

    return await trio.to_thread.run_sync(run)


def rms(pcm: bytes) -> float:
    """Loudness of s16le samples: speech is in the thousands, digital silence 0."""
    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float64)
    return float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0


def livekit_client(server: LiveServer, model: str, response_format: str = "mp3") -> livekit_openai.TTS:
    return livekit_openai.TTS(
        base_url=server.base_url + "/v1",
        api_key="not-needed",
        model=model,
        voice="alloy",
        response_format=response_format,
    )


# tts-1 asks for the raw file (stream_format audio), gpt-4o-mini-tts and its dated name for SSE;
# pcm exercises the audio/pcm content type the plugin decodes as raw s16le.
@pytest.mark.parametrize(
    ("model", "response_format"),
    [("tts-1", "mp3"), ("gpt-4o-mini-tts", "mp3"), ("gpt-4o-mini-tts-2025-12-15", "pcm"), ("tts-1-hd", "pcm")],
)
async def test_livekit_plugin_synthesize(live_server: LiveServer, model: str, response_format: str) -> None:
    async def speak() -> tuple[bytes, set[tuple[int, int]]]:
        tts = livekit_client(live_server, model, response_format)
        try:
            frames = [event.frame async for event in tts.synthesize(TEXT)]
        finally:
            await tts.aclose()
        return b"".join(bytes(frame.data) for frame in frames), {(f.sample_rate, f.num_channels) for f in frames}

    pcm, shapes = await in_asyncio(speak)
    assert shapes == {(OPENAI_RATE, 1)}
    assert 2.0 < len(pcm) / 2 / OPENAI_RATE < 8.0
    assert rms(pcm) > 300


@pytest.mark.parametrize("model", ["tts-1", "gpt-4o-mini-tts"])
async def test_livekit_plugin_streams_through_stream_adapter(live_server: LiveServer, model: str) -> None:
    """The plugin cannot take text as it is written (``streaming`` is False): agents wrap it in a StreamAdapter."""

    async def speak() -> tuple[bytes, set[str]]:
        tts = livekit_tts.StreamAdapter(tts=livekit_client(live_server, model))
        pcm = b""
        segments: set[str] = set()
        try:
            stream = tts.stream()
            for word in TEXT.split():
                stream.push_text(word + " ")
            stream.end_input()
            async for event in stream:
                pcm += bytes(event.frame.data)
                segments.add(event.segment_id)
            await stream.aclose()
        finally:
            await tts.aclose()
        return pcm, segments

    pcm, segments = await in_asyncio(speak)
    assert len(segments) >= 1
    assert 2.0 < len(pcm) / 2 / OPENAI_RATE < 8.0
    assert rms(pcm) > 300


@pytest.mark.parametrize(("voice", "model"), [("alloy", "gpt-4o-mini-tts"), ("marin", "gpt-4o-mini-tts-2025-12-15")])
async def test_pipecat_openai_tts_service_in_a_pipeline(live_server: LiveServer, voice: str, model: str) -> None:
    """Pipecat's service only runs inside a pipeline (its setup gives it a task manager), so run_test hosts it."""
    assert voice in VALID_VOICES

    async def speak() -> list[object]:
        service = OpenAITTSService(
            api_key="not-needed",
            base_url=live_server.base_url + "/v1",
            sample_rate=OPENAI_RATE,
            settings=OpenAITTSService.Settings(model=model, voice=voice),
        )
        down, _ = await run_test(service, frames_to_send=[TTSSpeakFrame(text=TEXT)])
        return list(down)

    frames = await in_asyncio(speak)
    assert not [frame for frame in frames if isinstance(frame, ErrorFrame)]
    audio = [frame for frame in frames if isinstance(frame, TTSAudioRawFrame)]
    assert {(frame.sample_rate, frame.num_channels) for frame in audio} == {(OPENAI_RATE, 1)}
    pcm = b"".join(frame.audio for frame in audio)
    assert 2.0 < len(pcm) / 2 / OPENAI_RATE < 8.0
    assert rms(pcm) > 300
