"""The running server's shared state: settings, the engine pool, voices, counters.

One :class:`TtsService` is opened when the app starts serving and closed when
it stops; routes reach it through :func:`tts_trio.app.current_service`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import trio

from tts_trio import __version__
from tts_trio.encoding import EncodingChoice, choose_encoding
from tts_trio.engines import Voice, cloning_engines, engine_spec, engine_variants, engine_voices, open_engine_pool
from tts_trio.errors import VoiceNotFound, VoiceNotSupported
from tts_trio.params import GenerateParams
from tts_trio.pipeline import SynthesisJob
from tts_trio.pool import EnginePool
from tts_trio.settings import Settings
from tts_trio.voices import VoiceStore


class TtsService:
    """Everything a request needs besides itself."""

    def __init__(self, settings: Settings, pool: EnginePool, store: VoiceStore) -> None:
        self.settings = settings
        self.pool = pool
        self.store = store
        #: Serializes voice-store writes in this process (names must stay unique).
        self.store_lock = trio.Lock()
        self.voices: dict[str, Voice] = {voice.id.lower(): voice for voice in engine_voices(pool)}
        self.variants: set[str] = set(engine_variants(pool))
        self.spec = engine_spec(pool.name)
        self.default_voice = self.spec.default_voice
        self.active_streams = 0
        self.started = time.monotonic()

    @classmethod
    async def open(cls, settings: Settings) -> TtsService:
        store = VoiceStore(settings.voices_path)
        await trio.to_thread.run_sync(store.open)
        return cls(settings, await open_engine_pool(settings), store)

    async def aclose(self) -> None:
        await self.pool.aclose()

    def can_clone(self) -> bool:
        """Whether the current engine can speak with a custom voice's reference audio."""
        return self.spec.cloning

    def current_voice_id(self) -> str:
        """The voice used when a request names none: the one set, or ``default``."""
        return self.store.current() or "default"

    def resolve_voice(self, voice_id: str) -> str:
        """What the engine gets for ``voice_id``: a voice name, or a reference file for a custom voice.

        ``default`` is the current voice (``POST /v1/voices/{id}/set``), and
        the engine's own default when none is set or the one set is gone.
        """
        if voice_id == "default":
            current = self.store.current()
            if current is not None:
                try:
                    return self.resolve_voice(current)
                except (VoiceNotFound, VoiceNotSupported):
                    pass
            return self.default_voice
        if voice_id.startswith("v_"):
            reference = self.store.reference_path(voice_id)
            if not self.can_clone():
                raise VoiceNotSupported(
                    f"{voice_id!r} is a custom voice; engine {self.pool.name!r} cannot clone voices "
                    f"(engines that can: {', '.join(cloning_engines()) or 'none installed'})",
                    field="voice_id",
                )
            return str(reference)
        base, plus, variant = voice_id.partition("+")
        voice = self.voices.get(base.lower())
        if voice is None or (plus and variant not in self.variants):
            raise VoiceNotFound(
                f"no voice {voice_id!r} on engine {self.pool.name!r}; GET /v1/voices lists them",
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
            "voices": len(self.voices) + len(self.store.list()),
            "audio": self.pool.audio_format.describe("pcm"),
            "slots": {"total": slots.total, "in_use": slots.in_use, "waiting": slots.waiting},
            "active_streams": self.active_streams,
            "uptime_s": round(time.monotonic() - self.started, 1),
        }
