"""``system``: espeak-ng, the default engine (offline, CPU only, nothing to download)."""

from __future__ import annotations

import ctypes.util
import functools

import attrs

from tts_trio.engines.catalog.base import Capabilities, EngineConfig, ignores_temperature, not_blank
from tts_trio.engines.catalog.entry import CatalogEntry
from tts_trio.engines.catalog.probes import Probe
from tts_trio.engines.contract import Engine
from tts_trio.settings import Settings


@attrs.frozen(kw_only=True)
class SystemConfig(EngineConfig):
    """espeak-ng: ``voice`` is a voice id such as ``en-us`` or ``de``, optionally ``+variant``."""

    voice: str = attrs.field(default="en-us", validator=not_blank)


@functools.cache
def _espeak_library() -> str | None:
    return ctypes.util.find_library("espeak-ng")


def _check_system(config: SystemConfig, probe: Probe) -> list[str]:
    if _espeak_library() is None and probe.which("espeak-ng") is None:
        return ["espeak-ng is not installed: sudo apt-get install espeak-ng (macOS: brew install espeak-ng)"]
    return []


def _create_system(config: SystemConfig, settings: Settings) -> Engine:
    # Imported here like every engine, so listing the catalog stays cheap.
    from tts_trio.engines.espeak import EspeakEngine

    return EspeakEngine(voice=config.voice)


SYSTEM = CatalogEntry(
    name="system",
    description="espeak-ng, the platform synthesizer: offline, CPU only, nothing to download",
    extra=None,
    modules=(),
    env=(),
    capabilities=Capabilities(
        streaming="chunk",
        cloning=False,
        languages=("multilingual",),
        sample_rate=22050,
        gpu="no",
        network=False,
        temperature=ignores_temperature("espeak-ng is a formant synthesizer with no sampling to vary"),
    ),
    config_class=SystemConfig,
    factory=_create_system,
    check=_check_system,
)
