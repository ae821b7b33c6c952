"""The running server's shared state: settings, the current engine, voices, counters.

One :class:`TtsService` is opened when the app starts serving and closed when
it stops; routes reach it through :func:`tts_trio.api.app.current_service`.

The engines (the current one, resident ones a request may name, switches
here and across the fleet) are :mod:`tts_trio.synthesis.engine_set`'s.

The phrase cache (:mod:`tts_trio.synthesis.cache`, ``TTS_CACHE_BYTES``):
:meth:`TtsService.job` looks every job up as it builds it, so a route knows
hit or miss before its response starts (``X-Cache``). A switch clears it;
:meth:`TtsService.voice_removed` drops a deleted or changed voice's entries
(the key holds the voice's identity on disk too, so a voice recreated under
the same name never hits an older entry).

Wiring is by construction: the service is built with its nursery, metrics
and drain state (none is optional), and hands what the pool and admission
need to them when they are built, so no collaborator can be left unwired.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import attrs
import trio

from tts_trio import __version__
from tts_trio.audio.encoding import EncodingChoice, choose_encoding
from tts_trio.engines import LoadedEngine, cloning_engines
from tts_trio.engines.hardware import Device, detect_device
from tts_trio.engines.pool import EnginePool, PoolHooks
from tts_trio.errors import VoiceNotFound, VoiceNotSupported
from tts_trio.observability import Metrics
from tts_trio.settings import Settings
from tts_trio.synthesis.admission import Admission
from tts_trio.synthesis.cache import PhraseCache, cache_key
from tts_trio.synthesis.drain import Shutdown
from tts_trio.synthesis.engine_set import EngineSet
from tts_trio.synthesis.fleet import Fleet, follow
from tts_trio.synthesis.params import GenerateParams
from tts_trio.synthesis.pipeline import ScriptItem, StreamMetrics, SynthesisJob
from tts_trio.synthesis.respelling import Respelling
from tts_trio.synthesis.sentences import load_rules
from tts_trio.synthesis.spoken import ipa_markup, pronounced, respellings_of, ssml_script
from tts_trio.synthesis.ssml import is_ssml, parse_ssml
from tts_trio.voices.desired_engine import DesiredEngine
from tts_trio.voices.lexicon import Lexicon
from tts_trio.voices.store import VoiceStore

log = logging.getLogger(__name__)


class TtsService:
    """Everything a request needs besides itself."""

    def __init__(
        self,
        settings: Settings,
        engine: LoadedEngine,
        store: VoiceStore,
        device: Device,
        *,
        metrics: Metrics,
        shutdown: Shutdown,
        nursery: trio.Nursery,
        lexicon: Lexicon | None = None,
        fleet: Fleet | None = None,
        residents: dict[str, LoadedEngine] | None = None,
    ) -> None:
        self.settings = settings
        #: The fleet's desired engine and whether this replica runs it (see :mod:`tts_trio.synthesis.fleet`).
        self.fleet = fleet if fleet is not None else Fleet(settings.voices_path, settings.fleet_poll)
        #: The pronunciation lexicon, applied to every text in :meth:`job` (the app's, or one of its own
        #: on the same directory: both read the one file, which replicas share).
        self.lexicon = lexicon if lexicon is not None else Lexicon(settings.voices_path)
        #: Set off by the server's shutdown trigger (see :mod:`tts_trio.synthesis.drain`).
        self.shutdown = shutdown
        self.metrics = metrics
        self.store = store
        self.device = device
        #: Serializes voice-store writes in this process (names must stay unique).
        self.store_lock = trio.Lock()
        self.active_streams = 0
        self.admission = Admission(
            settings.max_streams,
            settings.max_queue,
            settings.max_queue_wait,
            shutdown,
            on_wait=metrics.queue_wait.observe,
            on_refuse=metrics.refused.inc,
        )
        self.shutdown.on_cut = lambda: self.stream_cancelled("shutdown")
        self.metrics.watch(
            active=lambda: self.active_streams,
            slots_in_use=lambda: self.pool.statistics().in_use,
            slots_total=lambda: self.pool.statistics().total,
            queue_depth=lambda: self.admission.waiting,
        )
        #: Identical requests answered from memory (``cache_bytes`` 0: off).
        self.cache = PhraseCache(settings.cache_bytes, on_hit=metrics.cache_hits.inc, on_miss=metrics.cache_misses.inc)
        self.metrics.watch_cache(size=lambda: self.cache.bytes, entries=lambda: len(self.cache))
        self.metrics.watch_engines(
            lambda: {name: engine.pool.statistics().as_tuple() for name, engine in self.engines.loaded().items()}
        )
        self.started = time.monotonic()
        self._streams_per_pool: dict[EnginePool, int] = {}
        #: The current engine, the resident ones, and retired ones finishing their streams.
        self.engines = EngineSet(
            settings,
            device,
            engine,
            residents=residents or {},
            fleet=self.fleet,
            hooks=self.pool_hooks(metrics),
            nursery=nursery,
            streams_on=lambda pool: self._streams_per_pool.get(pool, 0),
            # A new generation: no entry of the old engine (or its config) is answered again,
            # and none that a stream still running on it commits later.
            on_switch=self.cache.clear,
        )
        #: Cancels the poll of the fleet's desired engine when the service closes.
        self._following = trio.CancelScope()

    @staticmethod
    def pool_hooks(metrics: Metrics) -> PoolHooks:
        """How every engine pool this service opens reports to ``metrics``."""
        return PoolHooks(
            on_sentence=lambda engine, seconds: metrics.synthesis.labels(engine).observe(seconds),
            on_failure=lambda engine: metrics.engine_errors.labels(engine).inc(),
        )

    def stream_finished(self, metrics: StreamMetrics, protocol: str) -> None:
        """Record a stream that ended normally (time to first audio)."""
        if metrics.first_audio is not None:
            self.metrics.time_to_first_audio.labels(protocol).observe(metrics.first_audio - metrics.started)

    def stream_cancelled(self, cause: str) -> None:
        self.metrics.cancellations.labels(cause).inc()

    @classmethod
    async def open(
        cls,
        settings: Settings,
        nursery: trio.Nursery,
        metrics: Metrics,
        shutdown: Shutdown,
        lexicon: Lexicon | None = None,
    ) -> TtsService:
        """Open the voice store and the engines (:meth:`EngineSet.open`), and build the service around them."""
        store = VoiceStore(settings.voices_path)
        await trio.to_thread.run_sync(store.open)
        load_rules()
        device = await trio.to_thread.run_sync(detect_device)
        fleet = Fleet(settings.voices_path, settings.fleet_poll)
        opened = await EngineSet.open(settings, device, fleet, cls.pool_hooks(metrics))
        service = cls(
            settings,
            opened.current,
            store,
            device,
            metrics=metrics,
            shutdown=shutdown,
            nursery=nursery,
            lexicon=lexicon,
            fleet=fleet,
            residents=opened.residents,
        )
        if fleet.enabled:
            nursery.start_soon(service._follow_fleet)
        return service

    async def _follow_fleet(self) -> None:
        with self._following:
            await follow(self.shutdown, self.fleet, self.engines.converge)

    async def aclose(self) -> None:
        self._following.cancel()
        await self.engines.aclose()

    # -- the engines ---------------------------------------------------------
    @property
    def engine(self) -> LoadedEngine:
        """The current engine: what a request that names none gets."""
        return self.engines.current

    @engine.setter
    def engine(self, engine: LoadedEngine) -> None:
        self.engines.current = engine

    @property
    def pool(self) -> EnginePool:
        return self.engine.pool

    @property
    def voices(self) -> dict[str, Any]:
        return self.engine.voices

    @property
    def variants(self) -> frozenset[str]:
        return self.engine.variants

    @property
    def default_voice(self) -> str:
        return self.engine.default_voice or "default"

    async def switch(self, name: str, config: dict[str, Any] | None) -> tuple[LoadedEngine, DesiredEngine | None]:
        """Make ``name`` current here and for the fleet (see :meth:`EngineSet.switch`)."""
        return await self.engines.switch(name, config)

    def loaded_names(self) -> set[str]:
        return self.engines.loaded_names()

    # -- voices ----------------------------------------------------------
    def can_clone(self, engine: LoadedEngine | None = None) -> bool:
        """Whether ``engine`` (default: the current one) can speak with a custom voice's reference audio."""
        return (engine or self.engine).cloning

    def current_voice_id(self) -> str:
        """The voice used when a request names none: the one set, or ``default``."""
        return self.store.current() or "default"

    def resolve_voice(self, voice_id: str, engine: LoadedEngine | None = None) -> str | None:
        """What ``engine`` (default: the current one) gets for ``voice_id``: a voice name, a reference file, or None.

        ``default`` is the current voice (``POST /v1/voices/{id}/set``), and
        the engine's own default when none is set, the one set is gone, or
        the engine cannot speak it (a voice of another engine).
        """
        engine = engine or self.engine
        if voice_id == "default":
            current = self.store.current()
            if current is not None:
                try:
                    return self.resolve_voice(current, engine)
                except (VoiceNotFound, VoiceNotSupported):
                    pass
            return engine.default_voice
        if voice_id.startswith("v_"):
            reference = self.store.reference_path(voice_id)
            if not self.can_clone(engine):
                raise VoiceNotSupported(
                    f"{voice_id!r} is a custom voice; engine {engine.name!r} cannot clone voices "
                    f"(engines that can: {', '.join(cloning_engines())})",
                    field="voice_id",
                )
            return str(reference)
        base, plus, variant = voice_id.partition("+")
        voice = engine.voices.get(base.lower())
        if voice is None or (plus and variant not in engine.variants):
            raise VoiceNotFound(
                f"no voice {voice_id!r} on engine {engine.name!r}; GET /v1/voices lists them",
                field="voice_id",
            )
        return f"{voice.id}+{variant}" if plus else str(voice.id)

    def job(self, params: GenerateParams) -> SynthesisJob:
        """Turn validated parameters into work for the pipeline, bound to the engine it names (or the current one).

        Every route passes through here, so this is where an SSML text
        (one that starts with ``<speak``) is parsed (raises 422 naming the
        element and line) into the job's script; a plain text stays as it is.
        """
        engine = self.engines.named(params.engine)
        voice = self.resolve_voice(params.voice_id, engine)
        # Always set: engine instances are shared, so nothing may carry over. Only the
        # parameters this engine takes (the catalog says which; temperature is ignored by most).
        voice_parameters = engine.voice_parameters(speed=params.speed, temperature=params.temperature)
        script: tuple[ScriptItem, ...] | None = None
        warnings: tuple[str, ...] = ()
        text = params.text
        lexicon = self.lexicon.snapshot()  # one stat when the file did not change
        respellings: tuple[Respelling, ...] = ()
        # IPA (the lexicon's phoneme entries, SSML's <phoneme>) reaches engines that take it as marked spans.
        markup = ipa_markup(engine, voice)
        if is_ssml(params.text):
            document = parse_ssml(params.text, strict=self.settings.ssml_strict)
            script = ssml_script(document, engine, speed=params.speed, temperature=params.temperature)
            script, spoken_warnings, respellings = pronounced(script, lexicon, engine, voice)
            warnings = document.warnings + spoken_warnings
        elif len(lexicon):
            applied = lexicon.apply(text, markup)
            text, warnings, respellings = applied.text, applied.warnings, respellings_of(applied)
        # The cache key is made of the text as it will be spoken, so a lexicon change is a miss by itself.
        job = SynthesisJob(
            pool=engine.pool,
            text=text,
            voice=voice,
            max_sentence_chars=self.settings.max_sentence_chars,
            shutdown=self.shutdown,
            voice_parameters=voice_parameters,
            cut_first_sentence=engine.whole_sentences,
            script=script,
            warnings=warnings,
            respellings=respellings,
            # The reported words are part of what is cached: "nginx" said as "engine x" is not "engine x".
            extra_key="\x1f".join(respelling.original for respelling in respellings),
            pronounce=(lambda sentence: lexicon.apply(sentence, markup).text) if len(lexicon) else None,
        )
        return self.cache_lookup(job, params.voice_id)

    def cache_lookup(self, job: SynthesisJob, voice_id: str) -> SynthesisJob:
        """``job`` with its place in the phrase cache (hit or miss), or as it is when the cache is off.

        :meth:`job` calls it last; a stage that changes the job afterwards
        (its text, its ``extra_key``) calls it again on the changed job.
        ``voice_id`` is the voice the request named; ``default`` is indexed
        under the voice it stands for too, so deleting that voice drops its entries.
        """
        if not self.cache.enabled:
            return job
        voice_ids = {voice_id}
        if voice_id == "default":
            current = self.store.current()
            if current is not None:
                voice_ids.add(current)
        cache = self.cache
        engine = f"{job.pool.name}#{cache.pool_token(job.pool)}"
        key = cache_key(job, engine=engine, generation=cache.generation, voice_identity=_file_identity(job.voice))
        return attrs.evolve(job, cache=cache.lookup(key, voice_ids))

    def voice_removed(self, voice_id: str) -> None:
        """Drop the cached audio of a custom voice that was deleted or changed."""
        dropped = self.cache.invalidate_voice(voice_id)
        if dropped:
            log.debug("dropped %d cached phrase(s) of voice %s", dropped, voice_id)

    def encoding(self, params: GenerateParams, job: SynthesisJob) -> EncodingChoice:
        """The validated output format and rate for a request (raises 422)."""
        return choose_encoding(params.output_format, params.sample_rate, job.pool.audio_format)

    @contextmanager
    def track_stream(self, pool: EnginePool) -> Iterator[None]:
        """Count a stream as active on ``pool`` for as long as the block runs."""
        self.active_streams += 1
        self._streams_per_pool[pool] = self._streams_per_pool.get(pool, 0) + 1
        try:
            yield
        finally:
            self.active_streams -= 1
            remaining = self._streams_per_pool[pool] - 1
            if remaining:
                self._streams_per_pool[pool] = remaining
            else:
                del self._streams_per_pool[pool]

    def health(self) -> dict[str, object]:
        slots = self.pool.statistics()
        return {
            "status": "ok",
            "version": __version__,
            "engine": self.pool.name,
            "device": self.pool.device,
            "hardware": self.device.describe(),
            "voices": len(self.voices) + len(self.store.list()),
            "audio": self.pool.audio_format.describe("pcm"),
            "slots": slots.as_dict(),
            "active_streams": self.active_streams,
            "queued_streams": self.admission.waiting,
            "uptime_s": round(time.monotonic() - self.started, 1),
            "fleet": self.fleet.describe(),
            "engines": {
                name: {"slots": loaded.pool.statistics().as_dict(), "device": loaded.pool.device, "current": current}
                for name, loaded in self.engines.loaded().items()
                for current in [loaded is self.engine]
            },
        }


def _file_identity(voice: str | None) -> str:
    """Which file a voice given as a path is (inode, size, mtime), so a replaced file never hits; else empty."""
    if not voice or os.sep not in voice:
        return ""
    try:
        stat = os.stat(voice)
    except OSError:
        return ""
    return f"{stat.st_dev}:{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}"
