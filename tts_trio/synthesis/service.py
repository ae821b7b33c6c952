"""The running server's shared state: settings, the current engine, voices, counters.

One :class:`TtsService` is opened when the app starts serving and closed when
it stops; routes reach it through :func:`tts_trio.api.app.current_service`.

Engine switching: the current engine can be replaced while streams run.
Each job carries the pool it was resolved against, so a stream that started
before a switch finishes on the old engine; the old engine is shut down when
its last stream ends. A switch that fails to load leaves the old engine
current. A switch is also recorded on the shared store as the fleet's
desired engine, and every replica on that store follows it
(:mod:`tts_trio.synthesis.fleet`).

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
from tts_trio.engines import LoadedEngine, cloning_engines, open_engine
from tts_trio.engines.hardware import Device, detect_device
from tts_trio.engines.pool import EnginePool, PoolHooks
from tts_trio.errors import ApiError, VoiceNotFound, VoiceNotSupported
from tts_trio.observability import Metrics
from tts_trio.settings import Settings
from tts_trio.synthesis.admission import Admission
from tts_trio.synthesis.cache import PhraseCache, cache_key
from tts_trio.synthesis.drain import Shutdown
from tts_trio.synthesis.fleet import Fleet, follow
from tts_trio.synthesis.params import GenerateParams, clamp_speed
from tts_trio.synthesis.pipeline import ScriptItem, Silence, Spoken, StreamMetrics, SynthesisJob
from tts_trio.synthesis.respelling import Respelling
from tts_trio.synthesis.ssml import Document, Speech, is_ssml, parse_ssml
from tts_trio.voices.desired_engine import DesiredEngine, record_desired
from tts_trio.voices.lexicon import Applied, Lexicon, LexiconSnapshot
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
    ) -> None:
        self.settings = settings
        #: The fleet's desired engine and whether this replica runs it (see :mod:`tts_trio.synthesis.fleet`).
        self.fleet = fleet if fleet is not None else Fleet(settings.voices_path, settings.fleet_poll)
        #: The pronunciation lexicon, applied to every text in :meth:`job` (the app's, or one of its own
        #: on the same directory: both read the one file, which replicas share).
        self.lexicon = lexicon if lexicon is not None else Lexicon(settings.voices_path)
        #: Set off by the server's shutdown trigger (see :mod:`tts_trio.synthesis.drain`).
        self.shutdown = shutdown
        #: Where retired engines wait for their last stream before they are closed.
        self._nursery = nursery
        self.metrics = metrics
        self.engine = engine
        self.store = store
        self.device = device
        #: Serializes voice-store writes in this process (names must stay unique).
        self.store_lock = trio.Lock()
        #: One switch at a time.
        self.switch_lock = trio.Lock()
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
        self.started = time.monotonic()
        self._streams_per_pool: dict[EnginePool, int] = {}
        self._retired: list[EnginePool] = []
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
        """Open the voice store and the engine, and build the service around them.

        The engine is the fleet's recorded one when a switch was recorded on
        the store (should it fail to load here: the configured one, and the
        replica reports that it diverged), else the configured one.
        """
        store = VoiceStore(settings.voices_path)
        await trio.to_thread.run_sync(store.open)
        device = await trio.to_thread.run_sync(detect_device)
        fleet = Fleet(settings.voices_path, settings.fleet_poll)
        desired = await trio.to_thread.run_sync(fleet.read)
        engine: LoadedEngine | None = None
        if desired is not None:
            log.info(
                "opening engine %s, recorded by the fleet's switch %d, instead of %s",
                desired.engine,
                desired.generation,
                settings.engine,
            )
            try:
                engine = await open_engine(
                    settings, device, desired.engine, desired.config, hooks=cls.pool_hooks(metrics)
                )
                fleet.runs(desired)
            except ApiError as error:
                log.warning("the fleet's engine %s cannot be loaded here: %s", desired.engine, error.message)
                fleet.failed(desired, error, trio.current_time())
        if engine is None:
            engine = await open_engine(settings, device, hooks=cls.pool_hooks(metrics))
        service = cls(
            settings,
            engine,
            store,
            device,
            metrics=metrics,
            shutdown=shutdown,
            nursery=nursery,
            lexicon=lexicon,
            fleet=fleet,
        )
        if fleet.enabled:
            nursery.start_soon(service._follow_fleet)
        return service

    async def _follow_fleet(self) -> None:
        with self._following:
            await follow(self)

    async def aclose(self) -> None:
        self._following.cancel()
        for pool in [self.engine.pool, *self._retired]:
            await pool.aclose()

    # -- the current engine ------------------------------------------------
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
        """Load ``name`` off the event loop, record it for the fleet, and make it current.

        On failure the old one stays current and nothing is recorded: a load
        that fails is its own answer (4xx or 503); a store that cannot take
        the record (full, read-only) closes the new engine again and answers
        507 or 503, so this replica never runs what the others will not.
        Returns the engine and the record (None with ``TTS_FLEET_POLL=0``).
        """
        async with self.switch_lock:
            loaded = await open_engine(self.settings, self.device, name, config, hooks=self.pool_hooks(self.metrics))
            record = None
            if self.fleet.enabled:
                try:
                    root = self.settings.voices_path
                    record = await trio.to_thread.run_sync(record_desired, root, name, config or {})
                except BaseException:
                    with trio.CancelScope(shield=True):
                        await loaded.pool.aclose()
                    raise
            self._install(loaded)
            self.fleet.runs(record)
            return loaded, record

    async def converge(self) -> None:
        """Load the fleet's desired engine if this replica does not run it yet (the poll calls this)."""
        async with self.switch_lock:
            desired = self.fleet.wanted(trio.current_time())
            if desired is None:
                return  # a local switch or an earlier poll got there first
            self.fleet.loading = True
            try:
                loaded = await open_engine(
                    self.settings, self.device, desired.engine, desired.config, hooks=self.pool_hooks(self.metrics)
                )
            except ApiError as error:
                log.warning(
                    "fleet: engine %s (switch %d) cannot be loaded here; staying on %s: %s",
                    desired.engine,
                    desired.generation,
                    self.engine.name,
                    error.message,
                )
                self.fleet.failed(desired, error, trio.current_time())
                return
            finally:
                self.fleet.loading = False
            log.info("fleet: following switch %d", desired.generation)
            self._install(loaded)
            self.fleet.runs(desired)

    def _install(self, loaded: LoadedEngine) -> None:
        """Make ``loaded`` current; the old engine finishes its streams and is shut down after them."""
        old, self.engine = self.engine, loaded
        # A new generation: no entry of the old engine (or its config) is answered again,
        # and none that a stream still running on it commits later.
        self.cache.clear()
        log.info("switched engine from %s to %s", old.name, loaded.name)
        self._retire(old.pool)

    def _retire(self, pool: EnginePool) -> None:
        """Shut ``pool`` down once no stream has used it for a while.

        Requests resolve their engine before they start streaming (they may
        wait for an admission place, or in a WebSocket's queue), so an old
        pool is kept until it has had no stream for longer than such a wait.
        """
        self._retired.append(pool)
        grace = self.settings.max_queue_wait + 1.0

        async def reap() -> None:
            try:
                idle_since = trio.current_time()
                while True:
                    await trio.sleep(min(grace, 1.0))
                    if self._streams_per_pool.get(pool, 0):
                        idle_since = trio.current_time()
                    elif trio.current_time() - idle_since >= grace:
                        break
                self._retired.remove(pool)
                await pool.aclose()
            except Exception:
                log.exception("closing the previous engine failed")

        self._nursery.start_soon(reap)

    def loaded_names(self) -> set[str]:
        return {self.engine.name, *(pool.name for pool in self._retired)}

    # -- voices ----------------------------------------------------------
    def can_clone(self) -> bool:
        """Whether the current engine can speak with a custom voice's reference audio."""
        return self.engine.cloning

    def current_voice_id(self) -> str:
        """The voice used when a request names none: the one set, or ``default``."""
        return self.store.current() or "default"

    def resolve_voice(self, voice_id: str) -> str | None:
        """What the engine gets for ``voice_id``: a voice name, a reference file, or None (its own default).

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
            return self.engine.default_voice
        if voice_id.startswith("v_"):
            reference = self.store.reference_path(voice_id)
            if not self.can_clone():
                raise VoiceNotSupported(
                    f"{voice_id!r} is a custom voice; engine {self.pool.name!r} cannot clone voices "
                    f"(engines that can: {', '.join(cloning_engines())})",
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
        return f"{voice.id}+{variant}" if plus else str(voice.id)

    def job(self, params: GenerateParams) -> SynthesisJob:
        """Turn validated parameters into work for the pipeline, bound to the current engine.

        Every route passes through here, so this is where an SSML text
        (one that starts with ``<speak``) is parsed (raises 422 naming the
        element and line) into the job's script; a plain text stays as it is.
        """
        engine = self.engine
        voice = self.resolve_voice(params.voice_id)
        # Always set: engine instances are shared, so nothing may carry over. Only the
        # parameters this engine takes (the catalog says which; temperature is ignored by most).
        voice_parameters = engine.voice_parameters(speed=params.speed, temperature=params.temperature)
        script: tuple[ScriptItem, ...] | None = None
        warnings: tuple[str, ...] = ()
        text = params.text
        lexicon = self.lexicon.snapshot()  # one stat when the file did not change
        respellings: tuple[Respelling, ...] = ()
        if is_ssml(params.text):
            document = parse_ssml(params.text, strict=self.settings.ssml_strict)
            script = ssml_script(document, engine, speed=params.speed, temperature=params.temperature)
            warnings = document.warnings
            if len(lexicon):
                script, lexicon_warnings, respellings = _pronounced(script, lexicon)
                warnings += lexicon_warnings
        elif len(lexicon):
            applied = lexicon.apply(text)
            text, warnings, respellings = applied.text, applied.warnings, _respellings(applied)
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
            pronounce=(lambda sentence: lexicon.apply(sentence).text) if len(lexicon) else None,
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
            "slots": {"total": slots.total, "in_use": slots.in_use, "waiting": slots.waiting},
            "active_streams": self.active_streams,
            "queued_streams": self.admission.waiting,
            "uptime_s": round(time.monotonic() - self.started, 1),
            "fleet": self.fleet.describe(),
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


def ssml_script(
    document: Document, engine: LoadedEngine, *, speed: float, temperature: float
) -> tuple[ScriptItem, ...]:
    """A parsed SSML document as the pipeline's script, each fragment with its engine's complete voice parameters.

    A fragment's speed is the request's times its SSML factor, clamped to the
    range a request may ask for; fragments at one speed share one dict.
    """
    by_speed: dict[float, dict[str, Any]] = {}
    script: list[ScriptItem] = []
    for segment in document.segments:
        if isinstance(segment, Speech):
            fragment_speed = clamp_speed(speed * segment.speed_factor)
            parameters = by_speed.get(fragment_speed)
            if parameters is None:
                parameters = by_speed[fragment_speed] = engine.voice_parameters(
                    speed=fragment_speed, temperature=temperature
                )
            script.append(Spoken(segment.text, parameters))
        else:
            script.append(Silence(segment.seconds))
    return tuple(script)


def _respellings(applied: Applied) -> tuple[Respelling, ...]:
    """What each lexicon replacement was spoken as, and the word the client wrote."""
    found = (
        Respelling.of(applied.text[slice(*match.target)], applied.original[slice(*match.source)])
        for match in applied.replacements
    )
    return tuple(respelling for respelling in found if respelling is not None)


def _pronounced(
    script: tuple[ScriptItem, ...], lexicon: LexiconSnapshot
) -> tuple[tuple[ScriptItem, ...], tuple[str, ...], tuple[Respelling, ...]]:
    """An SSML script with the lexicon applied to each spoken fragment (breaks stay where they are)."""
    items: list[ScriptItem] = []
    warnings: list[str] = []
    respellings: list[Respelling] = []
    for item in script:
        if isinstance(item, Spoken):
            applied = lexicon.apply(item.text)
            items.append(attrs.evolve(item, text=applied.text))
            warnings += [warning for warning in applied.warnings if warning not in warnings]
            respellings += _respellings(applied)
        else:
            items.append(item)
    return tuple(items), tuple(warnings), tuple(respellings)
