"""Engines: start one from the catalog as a pool of instances, and what the service needs to know.

:mod:`tts_trio.engines.catalog` lists every engine (availability, options,
capabilities); this module turns a catalog entry and a config into an
:class:`~tts_trio.engines.pool.EnginePool` with one instance per synthesis slot,
started in worker threads so a slow model load never blocks the server.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import attrs
import trio

from tts_trio.engines.catalog import (
    CATALOG,
    EngineConfig,
    TemperatureUse,
    catalog_entry,
    parse_config,
)
from tts_trio.engines.contract import Engine, ListsVoices, Startable
from tts_trio.engines.espeak import DEFAULT_VOICE, EspeakEngine, espeak_speed_parameters
from tts_trio.engines.espeak_ipa import to_mnemonics
from tts_trio.engines.formats import output_format
from tts_trio.engines.hardware import Device
from tts_trio.engines.piper import PiperEngine, piper_speed_parameters
from tts_trio.engines.pool import NO_HOOKS, EnginePool, PoolHooks, PoolPolicy
from tts_trio.errors import ApiError, EngineLoadError, InvalidParameter
from tts_trio.settings import Settings

log = logging.getLogger(__name__)

__all__ = [
    "CATALOG",
    "Engine",
    "LoadedEngine",
    "PoolHooks",
    "PoolPolicy",
    "Voice",
    "catalog_entry",
    "cloning_engines",
    "open_engine",
]

#: Engine voice parameters for a speaking rate (1.0 = normal), where the engine has one.
SPEED_PARAMETERS: dict[str, Callable[[float], dict[str, Any]]] = {
    "system": espeak_speed_parameters,
    "piper": piper_speed_parameters,
}


@runtime_checkable
class SizesItself(Protocol):
    """A config that knows its engine's slots better than its catalog row (Piper: CUDA needs onnxruntime-gpu)."""

    def default_slots(self, device: Device) -> int: ...


@attrs.frozen
class Voice:
    """A built-in voice a client can name in ``voice_id``."""

    id: str
    name: str
    kind: str = "builtin"
    language: str = ""
    gender: str = "unknown"
    #: Where the engine says (Piper voices): the voice's own rate and quality label.
    sample_rate: int | None = None
    quality: str | None = None


@attrs.frozen
class LoadedEngine:
    """A started engine: its pool plus what requests need to know about it."""

    pool: EnginePool
    config: EngineConfig
    #: The voice name the engine uses when a request names none; None keeps the engine's own.
    default_voice: str | None
    voices: dict[str, Voice]
    variants: frozenset[str]
    cloning: bool
    #: The engine sends a sentence's audio only once the whole sentence is done (Piper, Kokoro, ...):
    #: a long first sentence is then spoken in two parts, so first audio comes sooner.
    whole_sentences: bool = False
    #: Whether the engine speaks a given IPA string with a given voice (None: its default), handed to it
    #: as a marked span (tts_trio.engines.phonemes: the lexicon's phoneme entries, SSML's ``<phoneme>``);
    #: None: it takes no IPA at all. Where it cannot, the written text is spoken instead, with a warning.
    speaks_ipa: Callable[[str, str | None], bool] | None = None

    @property
    def takes_phonemes(self) -> bool:
        return self.speaks_ipa is not None

    @property
    def name(self) -> str:
        return self.pool.name

    @property
    def temperature(self) -> TemperatureUse | None:
        """What a request's temperature does here (``None`` for a pool outside the catalog, e.g. in tests)."""
        entry = CATALOG.get(self.name)
        return entry.capabilities.temperature if entry else None

    def speed_parameters(self, speed: float) -> dict[str, Any]:
        make = SPEED_PARAMETERS.get(self.name)
        return make(speed) if make else {}

    def voice_parameters(self, *, speed: float, temperature: float) -> dict[str, Any]:
        """The engine's voice parameters for a request: only the ones this engine takes.

        Engines that take no temperature never see one: some (Piper) raise
        on any voice parameter they do not know.
        """
        use = self.temperature
        return {**self.speed_parameters(speed), **(use.voice_parameters(temperature) if use else {})}


def cloning_engines() -> list[str]:
    """Engines (in the catalog) that speak with a custom voice's reference audio."""
    return [name for name, entry in CATALOG.items() if entry.capabilities.cloning]


async def open_engine(
    settings: Settings,
    device: Device,
    name: str | None = None,
    config: dict[str, Any] | None = None,
    *,
    hooks: PoolHooks = NO_HOOKS,
) -> LoadedEngine:
    """Start ``name`` (default: the configured engine) with ``config``; raise a clear 4xx/503 if it cannot.

    The pool's policy comes from ``settings``; ``hooks`` is how the pool reports
    to its owner (the service passes its metrics; a bare pool reports nothing).
    """
    entry = catalog_entry(name or settings.engine)
    parsed = parse_config(entry.name, config if config is not None else {}, settings=settings)
    availability = await trio.to_thread.run_sync(entry.availability, settings, parsed)
    if not availability.available:
        raise EngineLoadError(f"engine {entry.name!r} is not available here: {availability.reason}", engine=entry.name)
    slots = parsed.slots or settings.slots
    if not slots:
        sizes = parsed.default_slots if isinstance(parsed, SizesItself) else entry.default_slots
        slots = await trio.to_thread.run_sync(sizes, device)
    engines: list[Engine | None] = [None] * slots

    async def start(index: int) -> None:
        def build() -> Engine:
            engine = entry.create(parsed, settings)
            try:
                if isinstance(engine, Startable):
                    engine.start()
            except BaseException:
                with contextlib.suppress(Exception):
                    engine.shutdown()
                raise
            return engine

        try:
            engines[index] = await trio.to_thread.run_sync(build)
        except ApiError:
            raise
        except Exception as error:  # a model file that is broken here, a GPU out of memory, a worker that died
            log.warning("engine %s failed to start: %r", entry.name, error)
            raise EngineLoadError(
                f"engine {entry.name!r} failed to start here; the server log says why", engine=entry.name
            ) from error

    try:
        async with trio.open_nursery() as nursery:
            for index in range(slots):
                nursery.start_soon(start, index)
    except BaseException as error:
        # Shielded: a cancelled switch must still release what it loaded (GPU memory).
        with trio.CancelScope(shield=True):
            for engine in engines:
                if engine is not None:
                    await trio.to_thread.run_sync(engine.shutdown)
        # The nursery groups what its tasks raised; a load that failed is one clear answer.
        answer = _only_api_errors(error)
        if answer is not None:
            raise answer from error
        raise
    started = [engine for engine in engines if engine is not None]
    first = started[0]
    fmt, converter = output_format(first.get_stream_info())
    pool = EnginePool(
        entry.name,
        started,
        fmt,
        device=_pool_device(first, entry.capabilities.gpu, device),
        converter=converter,
        policy=PoolPolicy.from_settings(settings),
        hooks=hooks,
    )
    voices: dict[str, Voice] = {}
    variants: frozenset[str] = frozenset()
    if entry.name == "system" and isinstance(first, ListsVoices):
        voices = {
            str(item["id"]).lower(): Voice(
                id=str(item["id"]), name=str(item["name"]), language=str(item["id"]), gender=str(item.get("gender"))
            )
            for item in first.get_voices()
        }
        variants = frozenset(first.get_variants())
    elif isinstance(first, PiperEngine):
        voices = _piper_voices(first)
    default_voice = getattr(parsed, "voice", None) or (DEFAULT_VOICE if entry.name == "system" else None)
    if isinstance(first, PiperEngine):
        default_voice = first.voice_name  # config.voice may be a part of the name ("joe")
    if voices and default_voice is not None and default_voice.partition("+")[0].lower() not in voices:
        await pool.aclose()
        raise InvalidParameter(f"config.voice: engine {entry.name!r} has no voice {default_voice!r}", field="config")
    return LoadedEngine(
        pool,
        parsed,
        default_voice,
        voices,
        variants,
        entry.capabilities.cloning,
        whole_sentences=entry.capabilities.streaming == "sentence",
        speaks_ipa=_ipa_check(first, default_voice),
    )


def _ipa_check(engine: Engine, default_voice: str | None) -> Callable[[str, str | None], bool] | None:
    """Piper's model reads IPA itself; espeak-ng reads the IPA that maps to its (English) mnemonics; others none."""
    if isinstance(engine, PiperEngine):
        return lambda ipa, voice: True

    if isinstance(engine, EspeakEngine):

        def english(ipa: str, voice: str | None) -> bool:
            # The mnemonics are those of espeak-ng's English phoneme table; other languages name theirs apart.
            language = (voice or default_voice or "").partition("+")[0].lower()
            return language.startswith("en") and to_mnemonics(ipa) is not None

        return english
    return None


def _only_api_errors(error: BaseException) -> ApiError | None:
    """The first :class:`ApiError` of a group made of nothing else (a cancellation passes as it is)."""
    if not isinstance(error, BaseExceptionGroup):
        return None
    leaves: list[BaseException] = []
    pending: list[BaseException] = [error]
    while pending:
        item = pending.pop()
        if isinstance(item, BaseExceptionGroup):
            pending.extend(item.exceptions)
        else:
            leaves.append(item)
    if leaves and all(isinstance(leaf, ApiError) for leaf in leaves):
        first = leaves[-1]
        assert isinstance(first, ApiError)
        return first
    return None


def _pool_device(engine: Engine, gpu: str, device: Device) -> str:
    """Where the pool's work runs: Piper knows (CUDA only with onnxruntime-gpu); others follow the hardware."""
    if isinstance(engine, PiperEngine):
        return engine.device
    return device.kind if gpu != "no" else "cpu"


def _piper_voices(engine: PiperEngine) -> dict[str, Voice]:
    """Every discovered Piper voice, keyed by its lowercased name; language as a BCP 47 tag (``en-US``)."""
    voices: dict[str, Voice] = {}
    for item in engine.get_voices():
        name = str(item["name"])
        rate = item.get("sample_rate")
        voices[name.lower()] = Voice(
            id=name,
            name=name,
            language=str(item.get("language") or "").replace("_", "-"),
            sample_rate=int(rate) if isinstance(rate, int) else None,
            quality=str(item["quality"]) if item.get("quality") else None,
        )
    return voices
