"""The running server's shared state: settings, the engine pool, voices, counters.

One :class:`TtsService` is opened when the app starts serving and closed when
it stops; routes reach it through :func:`tts_trio.app.current_service`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from tts_trio import __version__
from tts_trio.encoding import EncodingChoice, choose_encoding
from tts_trio.engines import Voice, engine_spec, engine_variants, engine_voices, open_engine_pool
from tts_trio.errors import VoiceNotFound
from tts_trio.params import GenerateParams
from tts_trio.pipeline import SynthesisJob
from tts_trio.pool import EnginePool
from tts_trio.settings import Settings


class TtsService:
    """Everything a request needs besides itself."""

    def __init__(self, settings: Settings, pool: EnginePool) -> None:
        self.settings = settings
        self.pool = pool
        self.voices: dict[str, Voice] = {voice.id.lower(): voice for voice in engine_voices(pool)}
        self.variants: set[str] = set(engine_variants(pool))
        self.spec = engine_spec(pool.name)
        self.default_voice = self.spec.default_voice
        self.active_streams = 0
        self.started = time.monotonic()

    @classmethod
    async def open(cls, settings: Settings) -> TtsService:
        return cls(settings, await open_engine_pool(settings))

    async def aclose(self) -> None:
        await self.pool.aclose()

    def resolve_voice(self, voice_id: str) -> str:
        """The engine's name for ``voice_id``; ``default`` is the engine's default voice."""
        if voice_id == "default":
            return self.default_voice
        base, plus, variant = voice_id.partition("+")
        voice = self.voices.get(base.lower())
        if voice is None or (plus and variant not in self.variants):
            raise VoiceNotFound(
                f"no voice {voice_id!r} on engine {self.pool.name!r}; GET /v1/audio/voices lists them",
                field="voice_id",
            )
        return f"{voice.id}+{variant}" if plus else voice.id

    def job(self, params: GenerateParams) -> SynthesisJob:
        """Turn validated parameters into work for the pipeline (raises for unknown voices)."""
        return SynthesisJob(
            text=params.text,
            voice=self.resolve_voice(params.voice_id),
            max_sentence_chars=self.settings.max_sentence_chars,
            # Always set: engine instances are shared, so nothing may carry over.
            voice_parameters=self.spec.speed_parameters(params.speed),
        )

    def encoding(self, params: GenerateParams) -> EncodingChoice:
        """The validated output format and rate for a request (raises 422)."""
        return choose_encoding(params.output_format, params.sample_rate, self.pool.audio_format)

    @contextmanager
    def track_stream(self) -> Iterator[None]:
        """Count a stream as active for as long as the block runs."""
        self.active_streams += 1
        try:
            yield
        finally:
            self.active_streams -= 1

    def health(self) -> dict[str, object]:
        slots = self.pool.statistics()
        return {
            "status": "ok",
            "version": __version__,
            "engine": self.pool.name,
            "device": self.pool.device,
            "voices": len(self.voices),
            "audio": self.pool.audio_format.describe("pcm"),
            "slots": {"total": slots.total, "in_use": slots.in_use, "waiting": slots.waiting},
            "active_streams": self.active_streams,
            "uptime_s": round(time.monotonic() - self.started, 1),
        }
