"""The engine registry: which engines this server can run, and how to start one.

Each engine is opened as an :class:`~tts_trio.pool.EnginePool` of instances,
one per synthesis slot. Only engines that can speak on this machine are
listed; the default ``system`` engine (espeak-ng) needs no network, no model
download and no GPU.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import attrs
import trio

from tts_trio.audio import AudioFormat
from tts_trio.engines.espeak import DEFAULT_VOICE, EspeakEngine, espeak_speed_parameters
from tts_trio.pool import EnginePool
from tts_trio.settings import Settings


class UnknownEngine(Exception):
    """Raised when the configured engine is not one this server has."""


@attrs.frozen
class Voice:
    """A voice a client can name in ``voice_id``."""

    id: str
    name: str
    kind: str = "builtin"
    language: str = ""
    gender: str = "unknown"


@attrs.frozen
class EngineSpec:
    """How to build one engine family."""

    name: str
    description: str
    device: str
    default_voice: str
    factory: Callable[[], EspeakEngine]
    #: Engine voice parameters for a speaking rate (1.0 = normal).
    speed_parameters: Callable[[float], dict[str, Any]]
    #: Whether the engine speaks with a custom voice's reference audio.
    cloning: bool = False


ENGINES: dict[str, EngineSpec] = {
    "system": EngineSpec(
        name="system",
        description="espeak-ng, the platform synthesizer: offline, CPU, 22050 Hz mono",
        device="cpu",
        default_voice=DEFAULT_VOICE,
        factory=EspeakEngine,
        speed_parameters=espeak_speed_parameters,
    ),
}


def engine_spec(name: str) -> EngineSpec:
    try:
        return ENGINES[name]
    except KeyError:
        raise UnknownEngine(f"unknown engine {name!r}; available: {', '.join(sorted(ENGINES))}") from None


def default_slots(spec: EngineSpec) -> int:
    """Slots when none are configured: one per CPU core for a CPU engine."""
    return max(1, os.cpu_count() or 1)


async def open_engine_pool(settings: Settings) -> EnginePool:
    """Start ``settings.slots`` instances of the configured engine, in parallel threads."""
    spec = engine_spec(settings.engine)
    slots = settings.slots or default_slots(spec)
    engines = [spec.factory() for _ in range(slots)]
    async with trio.open_nursery() as nursery:
        for engine in engines:
            nursery.start_soon(trio.to_thread.run_sync, engine.start)
    _, channels, rate = engines[0].get_stream_info()
    return EnginePool(spec.name, engines, AudioFormat(sample_rate=rate, sample_width=2, channels=channels), spec.device)


def engine_voices(pool: EnginePool) -> list[Voice]:
    """The built-in voices of the pool's engine."""
    voices = []
    for entry in pool.engines[0].get_voices():
        voices.append(
            Voice(
                id=str(entry["id"]),
                name=str(entry["name"]),
                language=str(entry["id"]),
                gender=str(entry.get("gender", "unknown")),
            )
        )
    return voices


def engine_variants(pool: EnginePool) -> list[str]:
    """Voice variants the pool's engine accepts as ``<voice>+<variant>`` (may be none)."""
    get_variants = getattr(pool.engines[0], "get_variants", None)
    return list(get_variants()) if get_variants else []


def cloning_engines() -> list[str]:
    """Names of the engines this server can run that clone voices from reference audio."""
    return sorted(name for name, spec in ENGINES.items() if spec.cloning)
