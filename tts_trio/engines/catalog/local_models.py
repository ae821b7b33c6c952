"""Local neural engines: Coqui XTTS, Kokoro, Chatterbox and Piper.

They run offline once their weights are here, which is what their checks
look for: the Hugging Face cache, a checkpoint folder, a voice file, the
``piper`` executable. Chatterbox samples, so a request's ``temperature``
reaches it per sentence; XTTS fixes its temperature when its model process
starts (``config.temperature``); Kokoro and Piper have nothing to vary.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from tts_trio.engines.catalog.base import (
    DEVICES,
    Capabilities,
    EngineConfig,
    InvalidConfig,
    TemperatureUse,
    between,
    ignores_temperature,
    not_blank,
    one_of,
)
from tts_trio.engines.catalog.entry import CatalogEntry, rtts
from tts_trio.engines.catalog.probes import Probe, Which, file_missing, hf_missing
from tts_trio.engines.contract import Engine
from tts_trio.engines.hardware import detect_device
from tts_trio.errors import EngineLoadError, InvalidParameter
from tts_trio.settings import Settings

#: The only model RealtimeTTS 0.8.10's ChatterboxEngine can load: it imports
#: ``chatterbox.tts_turbo.ChatterboxTurboTTS`` and nothing else, so chatterbox-tts's
#: standard (``ChatterboxTTS``) and multilingual models are out of its reach.
CHATTERBOX_MODEL_TYPES = ("turbo",)
CHATTERBOX_TURBO_REPO = "ResembleAI/chatterbox-turbo"
CHATTERBOX_TURBO_FILES = ("ve.safetensors", "t3_turbo_v1.safetensors")
KOKORO_REPO = "hexgrad/Kokoro-82M"
#: What kokoro's KModel downloads from KOKORO_REPO (its MODEL_NAMES); voices come as voices/<name>.pt.
KOKORO_FILES = ("config.json", "kokoro-v1_0.pth")
COQUI_XTTS_FILES = ("config.json", "model.pth", "vocab.json", "speakers_xtts.pth")


# -- coqui -----------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class CoquiConfig(EngineConfig):
    """Coqui XTTS: ``voice`` is a reference WAV to clone (``None``: the built-in voice)."""

    voice: str | None = attrs.field(default=None, validator=not_blank)
    language: str = attrs.field(default="en", validator=not_blank)
    #: XTTS checkpoint, downloaded into ``<local_models_path>/<specific_model>``.
    specific_model: str = attrs.field(default="v2.0.2", validator=not_blank)
    #: Where XTTS checkpoints live; ``None``: ``./models`` (RealtimeTTS's default).
    local_models_path: str | None = attrs.field(default=None, validator=not_blank)
    #: ``None``: CUDA when torch sees it, else CPU.
    device: str | None = attrs.field(default=None, validator=one_of(*DEVICES))
    #: XTTS's sampling temperature, fixed for the engine's life (RealtimeTTS's default 0.85).
    temperature: float = attrs.field(default=0.85, validator=between(0.01, 2.0))


def _coqui_models_path(config: CoquiConfig) -> Path:
    return Path(config.local_models_path or "models").expanduser().absolute()


def _check_coqui(config: CoquiConfig, probe: Probe) -> list[str]:
    folder = _coqui_models_path(config) / config.specific_model
    problems = []
    if not all((folder / name).is_file() for name in COQUI_XTTS_FILES):
        problems.append(
            f"XTTS {config.specific_model} weights not downloaded (expected {', '.join(COQUI_XTTS_FILES)} "
            f"in {folder}): start the engine once with internet access (it fetches about 1.9 GB from "
            f"huggingface.co/coqui/XTTS-v2) or copy them there"
        )
    if config.voice:
        problems += file_missing(config.voice, "reference WAV (config.voice)")
    return problems


def _create_coqui(config: CoquiConfig, settings: Settings) -> Engine:
    from RealtimeTTS.engines.coqui_engine import CoquiEngine

    # An explicit path also keeps RealtimeTTS from reading COQUI_MODEL_PATH behind our back. Note that
    # CoquiEngine sets the process-wide multiprocessing start method to "spawn" and runs its model in a
    # child process per instance.
    return CoquiEngine(  # type: ignore[no-any-return]
        voice=config.voice or "",
        language=config.language,
        specific_model=config.specific_model,
        local_models_path=str(_coqui_models_path(config)),
        device=config.device,
        temperature=config.temperature,
    )


COQUI = CatalogEntry(
    name="coqui",
    description="Coqui XTTS v2: local neural voices cloned from a short WAV, 17 languages; a GPU is advised",
    **rtts("coqui", "TTS", "torch"),
    env=(),
    capabilities=Capabilities(
        streaming="chunk",
        cloning=True,
        languages=("multilingual",),
        sample_rate=24000,
        gpu="optional",
        network=False,
        temperature=ignores_temperature(
            "XTTS takes its temperature once, when its model process starts: set config.temperature when switching"
        ),
    ),
    config_class=CoquiConfig,
    cpu_slots=1,
    factory=_create_coqui,
    check=_check_coqui,
)


# -- kokoro ----------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class KokoroConfig(EngineConfig):
    """Kokoro: a voice such as ``af_heart`` (the prefix picks the language) or a blend formula."""

    voice: str = attrs.field(default="af_heart", validator=not_blank)
    speed: float = attrs.field(default=1.0, validator=between(0.25, 4.0))


def _kokoro_voices(voice: str) -> list[str]:
    """Voice names in ``voice``, which may be a blend such as ``0.3*af_sarah + 0.7*am_adam``."""
    return re.findall(r"\b[a-z]{2}_[a-z0-9]+\b", voice)


def _check_kokoro(config: KokoroConfig, probe: Probe) -> list[str]:
    voices = [f"voices/{name}.pt" for name in _kokoro_voices(config.voice)]
    return hf_missing(probe, KOKORO_REPO, f"Kokoro-82M weights or voice {config.voice!r}", *KOKORO_FILES, *voices)


def _create_kokoro(config: KokoroConfig, settings: Settings) -> Engine:
    from RealtimeTTS.engines.kokoro_engine import KokoroEngine

    return KokoroEngine(voice=config.voice, default_speed=config.speed)  # type: ignore[no-any-return]


KOKORO = CatalogEntry(
    name="kokoro",
    description="Kokoro-82M: a small local neural model, quick even on a CPU",
    **rtts("kokoro", "kokoro", "torch"),
    env=(),
    capabilities=Capabilities(
        streaming="sentence",
        cloning=False,
        languages=("en-us", "en-gb", "es", "fr", "hi", "it", "ja", "pt-br", "zh"),
        sample_rate=24000,
        gpu="optional",
        network=False,
        temperature=ignores_temperature("Kokoro is deterministic; it has no sampling step"),
    ),
    config_class=KokoroConfig,
    cpu_slots=1,
    factory=_create_kokoro,
    check=_check_kokoro,
)


# -- chatterbox ------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ChatterboxConfig(EngineConfig):
    """Chatterbox: the model variant, where its weights are, and an optional reference WAV to clone."""

    model_type: str = attrs.field(default="turbo")
    #: A local checkpoint directory; ``None``: download ResembleAI/chatterbox-turbo from Hugging Face.
    model_path: str | None = attrs.field(default=None, validator=not_blank)
    voice: str | None = attrs.field(default=None, validator=not_blank)
    #: ``None``: the device :func:`~tts_trio.engines.hardware.detect_device` finds.
    device: str | None = attrs.field(default=None, validator=one_of(*DEVICES))

    @model_type.validator
    def _loadable(self, attribute: attrs.Attribute[str], value: str) -> None:
        if value not in CHATTERBOX_MODEL_TYPES:
            raise InvalidConfig(
                attribute.name,
                f"{value!r} is not a model RealtimeTTS 0.8.10's ChatterboxEngine can load; "
                f"it loads only: {', '.join(CHATTERBOX_MODEL_TYPES)}",
            )


def _chatterbox_defaults(settings: Settings, data: Mapping[str, Any]) -> dict[str, Any]:
    """``model_type`` from ``CHATTERBOX_MODEL_TYPE`` when the request gives none."""
    if "model_type" in data:
        return {}
    value = settings.chatterbox_model_type
    if value not in CHATTERBOX_MODEL_TYPES:
        raise InvalidParameter(
            f"config.model_type: CHATTERBOX_MODEL_TYPE is {value!r}, but RealtimeTTS 0.8.10's ChatterboxEngine "
            f"loads only: {', '.join(CHATTERBOX_MODEL_TYPES)}; "
            "set CHATTERBOX_MODEL_TYPE=turbo or give config.model_type",
            field="config.model_type",
        )
    return {"model_type": value}


def _check_chatterbox(config: ChatterboxConfig, probe: Probe) -> list[str]:
    problems = []
    if config.model_path:
        folder = Path(config.model_path).expanduser()
        if not all((folder / name).is_file() for name in CHATTERBOX_TURBO_FILES):
            problems.append(f"no Chatterbox Turbo checkpoint ({', '.join(CHATTERBOX_TURBO_FILES)}) in {folder}")
    else:
        problems += hf_missing(probe, CHATTERBOX_TURBO_REPO, "Chatterbox Turbo weights", *CHATTERBOX_TURBO_FILES)
    if config.voice:
        problems += file_missing(config.voice, "reference WAV (config.voice)")
    return problems


def _create_chatterbox(config: ChatterboxConfig, settings: Settings) -> Engine:
    from RealtimeTTS.engines.chatterbox_engine import ChatterboxEngine, ChatterboxVoice

    voice = ChatterboxVoice(audio_prompt_path=config.voice) if config.voice else None
    # RealtimeTTS defaults to "cuda" even where there is none; ask the hardware instead.
    device = config.device or detect_device().kind
    return ChatterboxEngine(voice=voice, device=device, model_path=config.model_path)  # type: ignore[no-any-return]


CHATTERBOX = CatalogEntry(
    name="chatterbox",
    description="Resemble AI Chatterbox Turbo: local neural voices cloned from a WAV, English; GPU advised",
    **rtts("chatterbox", "chatterbox", "torch"),
    env=(),
    capabilities=Capabilities(
        streaming="sentence",
        cloning=True,
        languages=("en",),
        sample_rate=24000,
        gpu="optional",
        network=False,
        temperature=TemperatureUse(
            parameter="temperature",
            note="Chatterbox Turbo's sampling temperature, set for every sentence (higher: more varied delivery)",
        ),
    ),
    config_class=ChatterboxConfig,
    cpu_slots=1,
    factory=_create_chatterbox,
    check=_check_chatterbox,
    settings_defaults=_chatterbox_defaults,
)


# -- piper -----------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class PiperConfig(EngineConfig):
    """Piper: a voice model (``.onnx``) with its ``.json`` config, spoken by the ``piper`` executable."""

    model_path: str | None = attrs.field(default=None, validator=not_blank)
    #: ``None``: ``<model_path>.json``, the name Piper's voices are published with.
    config_path: str | None = attrs.field(default=None, validator=not_blank)
    #: ``None``: ``piper`` found on ``PATH``.
    piper_path: str | None = attrs.field(default=None, validator=not_blank)


def _piper_executable(config: PiperConfig, which: Which) -> str | None:
    if config.piper_path:
        path = Path(config.piper_path).expanduser()
        return str(path) if path.is_file() and os.access(path, os.X_OK) else None
    return which("piper")


def _piper_config_path(config: PiperConfig) -> str | None:
    if config.config_path:
        return config.config_path
    return f"{config.model_path}.json" if config.model_path else None


def _piper_problems(config: PiperConfig, which: Which) -> list[str]:
    problems = []
    if _piper_executable(config, which) is None:
        where = config.piper_path or "piper on PATH"
        problems.append(f"Piper executable not found ({where}): pip install piper-tts, or set config.piper_path")
    if not config.model_path:
        problems.append(
            "no voice model: set config.model_path to a Piper voice .onnx with its .onnx.json beside it "
            "(e.g. en_US-lessac-medium from huggingface.co/rhasspy/piper-voices)"
        )
        return problems
    problems += file_missing(config.model_path, "Piper voice model (config.model_path)")
    problems += file_missing(_piper_config_path(config) or "", "Piper voice config (config.config_path)")
    return problems


def _check_piper(config: PiperConfig, probe: Probe) -> list[str]:
    return _piper_problems(config, probe.which)


def _create_piper(config: PiperConfig, settings: Settings) -> Engine:
    from RealtimeTTS.engines.piper_engine import PiperEngine, PiperVoice

    executable = _piper_executable(config, shutil.which)
    if executable is None or not config.model_path:
        # Without an explicit path RealtimeTTS would run "piper.exe", which exists on Windows only.
        problems = "; ".join(_piper_problems(config, shutil.which))
        raise EngineLoadError(f"engine 'piper' cannot start: {problems}", engine="piper")
    voice = PiperVoice(model_file=config.model_path, config_file=_piper_config_path(config))
    return PiperEngine(piper_path=executable, voice=voice)  # type: ignore[no-any-return]


PIPER = CatalogEntry(
    name="piper",
    description="Piper: fast local neural voices from .onnx voice files, spoken by the piper executable",
    **rtts("piper"),
    env=(),
    capabilities=Capabilities(
        streaming="sentence",
        cloning=False,
        languages=("multilingual",),
        sample_rate=None,
        gpu="no",
        network=False,
        temperature=ignores_temperature("the piper executable's noise scale comes from the voice's .json"),
    ),
    config_class=PiperConfig,
    factory=_create_piper,
    check=_check_piper,
)
