"""Every engine the server knows: what it can do, what it needs here, and how to start it.

``GET /v1/engines`` lists this table with each engine's availability, and
``POST /v1/engines/switch`` validates a config with :func:`parse_config` and
builds instances with :meth:`CatalogEntry.create`.

One module per engine family, and everything about one engine (its config
class, its check, its factory and adapter, its row) together in it:

* :mod:`.system`: espeak-ng, the default;
* :mod:`.cloud`: Azure, OpenAI, ElevenLabs, Edge, gTTS;
* :mod:`.local_models`: Coqui XTTS, Kokoro, Chatterbox, Piper;
* :mod:`.base`, :mod:`.probes`, :mod:`.entry`: what they are built from.

Why a table of names instead of importing the engines: most of them pull in
torch, a cloud SDK or PyAudio, none of which the default install has, and some
cost seconds and GBs to import. An engine module is imported inside
:meth:`CatalogEntry.create`, when someone actually switches to it; see
:mod:`.probes` for how availability is judged without it. Whether the internet
can be reached is not checked (it cannot be known in advance);
``capabilities.network`` says who needs it.
"""

from __future__ import annotations

from tts_trio.engines.catalog.base import (
    DEVICES,
    GPU_USE,
    MAX_SLOTS,
    PA_INT16,
    STREAMING,
    Availability,
    Capabilities,
    EngineConfig,
    TemperatureUse,
)
from tts_trio.engines.catalog.cloud import (
    AZURE,
    AZURE_AUDIO_FORMATS,
    EDGE,
    ELEVENLABS,
    GTTS,
    GTTS_RATE,
    OPENAI,
    OPENAI_PCM_RATE,
    AzureConfig,
    EdgeConfig,
    ElevenlabsConfig,
    GTTSConfig,
    OpenAIConfig,
)
from tts_trio.engines.catalog.entry import CatalogEntry
from tts_trio.engines.catalog.local_models import (
    CHATTERBOX,
    CHATTERBOX_MODEL_TYPES,
    COQUI,
    KOKORO,
    PIPER,
    ChatterboxConfig,
    CoquiConfig,
    KokoroConfig,
    PiperConfig,
)
from tts_trio.engines.catalog.probes import huggingface_cache
from tts_trio.engines.catalog.system import SYSTEM, SystemConfig
from tts_trio.errors import EngineLoadError, UnknownEngine
from tts_trio.settings import Settings

__all__ = [
    "AZURE_AUDIO_FORMATS",
    "CATALOG",
    "CHATTERBOX_MODEL_TYPES",
    "DEVICES",
    "GPU_USE",
    "GTTS_RATE",
    "MAX_SLOTS",
    "OPENAI_PCM_RATE",
    "PA_INT16",
    "STREAMING",
    "Availability",
    "AzureConfig",
    "Capabilities",
    "CatalogEntry",
    "ChatterboxConfig",
    "CoquiConfig",
    "EdgeConfig",
    "ElevenlabsConfig",
    "EngineConfig",
    "EngineLoadError",
    "GTTSConfig",
    "KokoroConfig",
    "OpenAIConfig",
    "PiperConfig",
    "SystemConfig",
    "TemperatureUse",
    "UnknownEngine",
    "catalog_entry",
    "huggingface_cache",
    "parse_config",
]

#: In the order clients see them: the default first, then roughly by how often each is asked for.
CATALOG: dict[str, CatalogEntry] = {
    entry.name: entry for entry in (SYSTEM, AZURE, OPENAI, ELEVENLABS, COQUI, KOKORO, EDGE, GTTS, CHATTERBOX, PIPER)
}


def catalog_entry(name: str) -> CatalogEntry:
    """The entry for ``name``; an unknown name is a 404 that lists the known ones."""
    try:
        return CATALOG[name]
    except KeyError:
        raise UnknownEngine(f"unknown engine {name!r}; known engines: {', '.join(CATALOG)}", engine=name) from None


def parse_config(engine: str, data: object, *, settings: Settings) -> EngineConfig:
    """Validate ``data`` as ``engine``'s config (see :meth:`CatalogEntry.parse`); unknown engines are a 404."""
    return catalog_entry(engine).parse(data, settings=settings)
