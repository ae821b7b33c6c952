"""Every engine the server knows: what it can do, what it needs here, and how to start it.

``GET /v1/engines`` lists this table with each engine's availability, and
``POST /v1/engines/switch`` validates a config with :func:`parse_config` and
builds instances with :meth:`CatalogEntry.create`.

Why a table of names instead of importing the engines: most of them pull in
torch, a cloud SDK or PyAudio, none of which the default install has, and some
cost seconds and GBs to import. Availability therefore only asks importlib
whether a module *could* be imported (``find_spec`` reads no module code), looks
for files and executables, and reads keys from :class:`~tts_trio.settings.Settings`.
An engine module is imported inside :meth:`CatalogEntry.create`, when someone
actually switches to it. Whether the internet can be reached is not checked
(it cannot be known in advance); ``capabilities.network`` says who needs it.

Every reason an engine is unavailable is written for the person who has to fix
it: the exact ``pip install`` line, the environment variable to set, the file
or download that is missing.

Secrets: keys are read from ``Settings`` (whose repr hides them) and passed
straight to the engine's constructor. No repr, message or dict in this module
holds one; messages name the environment variable, never its value.
"""

from __future__ import annotations

import ctypes.util
import functools
import importlib.util
import io
import os
import re
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import cattrs
from cattrs.errors import ForbiddenExtraKeysError

from tts_trio.engines.hardware import Device, detect_device
from tts_trio.engines.hardware import default_slots as hardware_default_slots
from tts_trio.errors import EngineLoadError, InvalidParameter, UnknownEngine
from tts_trio.settings import ENV_VARS, Settings
from tts_trio.strict import strict_converter

if TYPE_CHECKING:
    from RealtimeTTS.engines.base_engine import BaseEngine

FindSpec = Callable[[str], object]
Which = Callable[[str], str | None]

STREAMING = ("sentence", "chunk")
GPU_USE = ("no", "optional", "required")
DEVICES = ("cuda", "mps", "cpu")
MAX_SLOTS = 256
#: The only model RealtimeTTS 0.8.10's ChatterboxEngine can load: it imports
#: ``chatterbox.tts_turbo.ChatterboxTurboTTS`` and nothing else, so chatterbox-tts's
#: standard (``ChatterboxTTS``) and multilingual models are out of its reach.
CHATTERBOX_MODEL_TYPES = ("turbo",)
AZURE_AUDIO_FORMATS = ("riff-16khz-16bit-mono-pcm", "riff-24khz-16bit-mono-pcm", "riff-48khz-16bit-mono-pcm")
#: PyAudio's ``paInt16``: RealtimeTTS reports sample formats as PyAudio constants.
PA_INT16 = 8
#: OpenAI's ``pcm`` response format is 24 kHz 16-bit mono (OpenAI's API reference).
OPENAI_PCM_RATE = 24_000
#: The rate the gTTS engine here resamples to; Google's MP3 is 24 kHz, so this is lossless.
GTTS_RATE = 24_000
KOKORO_REPO = "hexgrad/Kokoro-82M"
#: What kokoro's KModel downloads from KOKORO_REPO (its MODEL_NAMES); voices come as voices/<name>.pt.
KOKORO_FILES = ("config.json", "kokoro-v1_0.pth")
CHATTERBOX_TURBO_REPO = "ResembleAI/chatterbox-turbo"
COQUI_XTTS_FILES = ("config.json", "model.pth", "vocab.json", "speakers_xtts.pth")

_SETTING_FOR_ENV = {var: name for name, var in ENV_VARS.items()}


# -- what an engine can do and whether it can run here ------------------------------------------


def _member(choices: tuple[str, ...]) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value not in choices:
            raise ValueError(f"{attribute.name} must be one of {', '.join(choices)}, got {value!r}")

    return check


@attrs.frozen(kw_only=True)
class Capabilities:
    """What an engine offers, shown to clients so they can pick one."""

    #: ``sentence``: audio arrives when a whole sentence is synthesized;
    #: ``chunk``: audio streams while the sentence is still being synthesized.
    streaming: str = attrs.field(validator=_member(STREAMING))
    #: Voice cloning from a reference recording.
    cloning: bool
    #: A short honest list of language codes, or ``("multilingual",)``.
    languages: tuple[str, ...]
    #: The rate the engine delivers by default; ``None`` where it sends a
    #: compressed (MP3) stream or the rate comes from the chosen voice file.
    sample_rate: int | None
    #: ``no``, ``optional`` (runs on CPU, much faster on a GPU) or ``required``.
    gpu: str = attrs.field(validator=_member(GPU_USE))
    #: Needs internet access while speaking (not checked: it cannot be known in advance).
    network: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "streaming": self.streaming,
            "cloning": self.cloning,
            "languages": list(self.languages),
            "sample_rate": self.sample_rate,
            "gpu": self.gpu,
            "network": self.network,
        }


@attrs.frozen
class Availability:
    """Whether an engine can start here, and if not, what to do about it."""

    available: bool
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"available": self.available, "reason": self.reason}


# -- per-engine configuration --------------------------------------------------------------------


class _InvalidConfig(ValueError):
    """Raised by a config validator; carries the field so the 422 can name it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _not_blank(instance: Any, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and not value.strip():
        raise _InvalidConfig(attribute.name, "must not be empty")


def _one_of(*choices: str) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None and value not in choices:
            raise _InvalidConfig(attribute.name, f"must be one of {', '.join(choices)}, got {value!r}")

    return check


def _between(low: float, high: float) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None and not low <= value <= high:
            raise _InvalidConfig(attribute.name, f"must be between {low:g} and {high:g}, got {value!r}")

    return check


def _chatterbox_model_type(instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if value not in CHATTERBOX_MODEL_TYPES:
        raise _InvalidConfig(
            attribute.name,
            f"{value!r} is not a model RealtimeTTS 0.8.10's ChatterboxEngine can load; "
            f"it loads only: {', '.join(CHATTERBOX_MODEL_TYPES)}",
        )


@attrs.frozen(kw_only=True)
class EngineConfig:
    """Options common to every engine."""

    #: Engine instances (concurrent syntheses); ``None`` sizes it from the hardware.
    slots: int | None = attrs.field(default=None, validator=_between(1, MAX_SLOTS))


@attrs.frozen(kw_only=True)
class SystemConfig(EngineConfig):
    """espeak-ng: ``voice`` is a voice id such as ``en-us`` or ``de``, optionally ``+variant``."""

    voice: str = attrs.field(default="en-us", validator=_not_blank)


@attrs.frozen(kw_only=True)
class AzureConfig(EngineConfig):
    """Azure Speech: a neural voice name and the PCM format Azure sends."""

    voice: str = attrs.field(default="en-US-AriaNeural", validator=_not_blank)
    audio_format: str = attrs.field(default=AZURE_AUDIO_FORMATS[0], validator=_one_of(*AZURE_AUDIO_FORMATS))


@attrs.frozen(kw_only=True)
class OpenAIConfig(EngineConfig):
    """OpenAI speech: ``model`` (tts-1, tts-1-hd, gpt-4o-mini-tts), a voice, optional style instructions."""

    model: str = attrs.field(default="tts-1", validator=_not_blank)
    voice: str = attrs.field(default="alloy", validator=_not_blank)
    #: How to speak (gpt-4o-mini-tts only), e.g. "calm and slow".
    instructions: str | None = None


@attrs.frozen(kw_only=True)
class ElevenlabsConfig(EngineConfig):
    """ElevenLabs: the voice is chosen by its id; RealtimeTTS uses a voice *name* only as a label."""

    voice_id: str = attrs.field(default="piTKgcLEGmPE4e6mEKli", validator=_not_blank)  # "Nicole"
    model: str = attrs.field(default="eleven_multilingual_v2", validator=_not_blank)


@attrs.frozen(kw_only=True)
class CoquiConfig(EngineConfig):
    """Coqui XTTS: ``voice`` is a reference WAV to clone (``None``: the built-in voice)."""

    voice: str | None = attrs.field(default=None, validator=_not_blank)
    language: str = attrs.field(default="en", validator=_not_blank)
    #: XTTS checkpoint, downloaded into ``<local_models_path>/<specific_model>``.
    specific_model: str = attrs.field(default="v2.0.2", validator=_not_blank)
    #: Where XTTS checkpoints live; ``None``: ``./models`` (RealtimeTTS's default).
    local_models_path: str | None = attrs.field(default=None, validator=_not_blank)
    #: ``None``: CUDA when torch sees it, else CPU.
    device: str | None = attrs.field(default=None, validator=_one_of(*DEVICES))


@attrs.frozen(kw_only=True)
class KokoroConfig(EngineConfig):
    """Kokoro: a voice such as ``af_heart`` (the prefix picks the language) or a blend formula."""

    voice: str = attrs.field(default="af_heart", validator=_not_blank)
    speed: float = attrs.field(default=1.0, validator=_between(0.25, 4.0))


@attrs.frozen(kw_only=True)
class EdgeConfig(EngineConfig):
    """Microsoft Edge online voices: a voice short name."""

    voice: str = attrs.field(default="en-US-EmmaMultilingualNeural", validator=_not_blank)


@attrs.frozen(kw_only=True)
class GTTSConfig(EngineConfig):
    """gTTS: a language code and the Google domain that sets the accent (``com``, ``co.uk``, ...)."""

    language: str = attrs.field(default="en", validator=_not_blank)
    tld: str = attrs.field(default="com", validator=_not_blank)


@attrs.frozen(kw_only=True)
class ChatterboxConfig(EngineConfig):
    """Chatterbox: the model variant, where its weights are, and an optional reference WAV to clone."""

    model_type: str = attrs.field(default="turbo", validator=_chatterbox_model_type)
    #: A local checkpoint directory; ``None``: download ResembleAI/chatterbox-turbo from Hugging Face.
    model_path: str | None = attrs.field(default=None, validator=_not_blank)
    voice: str | None = attrs.field(default=None, validator=_not_blank)
    #: ``None``: the device :func:`~tts_trio.engines.hardware.detect_device` finds.
    device: str | None = attrs.field(default=None, validator=_one_of(*DEVICES))


@attrs.frozen(kw_only=True)
class PiperConfig(EngineConfig):
    """Piper: a voice model (``.onnx``) with its ``.json`` config, spoken by the ``piper`` executable."""

    model_path: str | None = attrs.field(default=None, validator=_not_blank)
    #: ``None``: ``<model_path>.json``, the name Piper's voices are published with.
    config_path: str | None = attrs.field(default=None, validator=_not_blank)
    #: ``None``: ``piper`` found on ``PATH``.
    piper_path: str | None = attrs.field(default=None, validator=_not_blank)


# -- what an engine needs on this machine ------------------------------------------------------


@attrs.frozen
class _Probe:
    """How availability looks at the machine; tests replace each part."""

    find_spec: FindSpec
    which: Which
    hf_cache: Path


def huggingface_cache(environ: Mapping[str, str] | None = None) -> Path:
    """The Hugging Face hub cache, found the way ``huggingface_hub`` finds it (not a secret, so read here)."""
    environ = os.environ if environ is None else environ
    if environ.get("HF_HUB_CACHE"):
        return Path(environ["HF_HUB_CACHE"]).expanduser()
    if environ.get("HF_HOME"):
        return Path(environ["HF_HOME"]).expanduser() / "hub"
    if environ.get("XDG_CACHE_HOME"):
        return Path(environ["XDG_CACHE_HOME"]).expanduser() / "huggingface" / "hub"
    return Path.home() / ".cache" / "huggingface" / "hub"


def _hf_cached(cache: Path, repo_id: str, *files: str) -> bool:
    """Whether some cached snapshot of ``repo_id`` holds all of ``files``."""
    snapshots = cache / f"models--{repo_id.replace('/', '--')}" / "snapshots"
    try:
        revisions = [path for path in snapshots.iterdir() if path.is_dir()]
    except OSError:
        return False
    return any(all((revision / name).exists() for name in files) for revision in revisions)


def _hf_missing(probe: _Probe, repo_id: str, what: str, *files: str) -> list[str]:
    if _hf_cached(probe.hf_cache, repo_id, *files):
        return []
    return [
        f"{what} not downloaded (no {repo_id} in the Hugging Face cache {probe.hf_cache}): "
        f"run `hf download {repo_id}` (huggingface_hub's CLI) or start the engine once with internet access"
    ]


def _file_missing(path: str, what: str) -> list[str]:
    return [] if Path(path).expanduser().is_file() else [f"{what} not found: {path}"]


def _installed(module: str, find_spec: FindSpec) -> bool:
    """Whether ``module`` could be imported; ``find_spec`` of a dotted name imports only its parents."""
    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):
        return False


@functools.cache
def _espeak_library() -> str | None:
    return ctypes.util.find_library("espeak-ng")


def _check_system(config: SystemConfig, probe: _Probe) -> list[str]:
    if _espeak_library() is None and probe.which("espeak-ng") is None:
        return ["espeak-ng is not installed: sudo apt-get install espeak-ng (macOS: brew install espeak-ng)"]
    return []


def _no_check(config: Any, probe: _Probe) -> list[str]:
    return []


def _check_coqui(config: CoquiConfig, probe: _Probe) -> list[str]:
    folder = _coqui_models_path(config) / config.specific_model
    problems = []
    if not all((folder / name).is_file() for name in COQUI_XTTS_FILES):
        problems.append(
            f"XTTS {config.specific_model} weights not downloaded (expected {', '.join(COQUI_XTTS_FILES)} "
            f"in {folder}): start the engine once with internet access (it fetches about 1.9 GB from "
            f"huggingface.co/coqui/XTTS-v2) or copy them there"
        )
    if config.voice:
        problems += _file_missing(config.voice, "reference WAV (config.voice)")
    return problems


def _kokoro_voices(voice: str) -> list[str]:
    """Voice names in ``voice``, which may be a blend such as ``0.3*af_sarah + 0.7*am_adam``."""
    return re.findall(r"\b[a-z]{2}_[a-z0-9]+\b", voice)


def _check_kokoro(config: KokoroConfig, probe: _Probe) -> list[str]:
    voices = [f"voices/{name}.pt" for name in _kokoro_voices(config.voice)]
    return _hf_missing(probe, KOKORO_REPO, f"Kokoro-82M weights or voice {config.voice!r}", *KOKORO_FILES, *voices)


def _check_gtts(config: GTTSConfig, probe: _Probe) -> list[str]:
    if probe.which("ffmpeg") is None and probe.which("avconv") is None:
        return ["ffmpeg is not installed (pydub needs it to decode gTTS's MP3): sudo apt-get install ffmpeg"]
    return []


def _check_chatterbox(config: ChatterboxConfig, probe: _Probe) -> list[str]:
    problems = []
    if config.model_path:
        folder = Path(config.model_path).expanduser()
        if not all((folder / name).is_file() for name in ("ve.safetensors", "t3_turbo_v1.safetensors")):
            problems.append(f"no Chatterbox Turbo checkpoint (ve.safetensors, t3_turbo_v1.safetensors) in {folder}")
    else:
        problems += _hf_missing(
            probe, CHATTERBOX_TURBO_REPO, "Chatterbox Turbo weights", "ve.safetensors", "t3_turbo_v1.safetensors"
        )
    if config.voice:
        problems += _file_missing(config.voice, "reference WAV (config.voice)")
    return problems


def _piper_executable(config: PiperConfig, which: Which) -> str | None:
    if config.piper_path:
        path = Path(config.piper_path).expanduser()
        return str(path) if path.is_file() and os.access(path, os.X_OK) else None
    return which("piper")


def _piper_config_path(config: PiperConfig) -> str | None:
    if config.config_path:
        return config.config_path
    return f"{config.model_path}.json" if config.model_path else None


def _check_piper(config: PiperConfig, probe: _Probe) -> list[str]:
    return _piper_problems(config, probe.which)


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
    problems += _file_missing(config.model_path, "Piper voice model (config.model_path)")
    problems += _file_missing(_piper_config_path(config) or "", "Piper voice config (config.config_path)")
    return problems


def _coqui_models_path(config: CoquiConfig) -> Path:
    return Path(config.local_models_path or "models").expanduser().absolute()


# -- building engines ----------------------------------------------------------------------------
# Each factory imports its engine module here, never at module level: see the module docstring.


def _create_system(config: SystemConfig, settings: Settings) -> BaseEngine:
    from tts_trio.engines.espeak import EspeakEngine

    return EspeakEngine(voice=config.voice)


def _create_azure(config: AzureConfig, settings: Settings) -> BaseEngine:
    from RealtimeTTS.engines.azure_engine import AzureEngine

    return AzureEngine(
        speech_key=settings.azure_speech_key or "",
        service_region=settings.azure_speech_region or "",
        voice=config.voice,
        audio_format=config.audio_format,
    )


@functools.cache
def _openai_pcm_engine() -> type[BaseEngine]:
    """OpenAIEngine asking for raw PCM and reporting its true rate.

    RealtimeTTS 0.8.10 reports 22050 Hz for ``pcm``, but OpenAI sends 24 kHz,
    which would play 9% slow and low. PCM (not the default MP3) because the
    server streams raw PCM from its engines.
    """
    from RealtimeTTS.engines.openai_engine import OpenAIEngine

    class OpenAIPcmEngine(OpenAIEngine):  # type: ignore[misc]
        def get_stream_info(self) -> tuple[int, int, int]:
            return PA_INT16, 1, OPENAI_PCM_RATE

    return OpenAIPcmEngine


def _create_openai(config: OpenAIConfig, settings: Settings) -> BaseEngine:
    return _openai_pcm_engine()(
        model=config.model,
        voice=config.voice,
        instructions=config.instructions,
        response_format="pcm",
        api_key=settings.openai_api_key,
    )


def _create_elevenlabs(config: ElevenlabsConfig, settings: Settings) -> BaseEngine:
    from RealtimeTTS.engines.elevenlabs_engine import ElevenlabsEngine

    return ElevenlabsEngine(api_key=settings.elevenlabs_api_key or "", id=config.voice_id, model=config.model)


def _create_coqui(config: CoquiConfig, settings: Settings) -> BaseEngine:
    from RealtimeTTS.engines.coqui_engine import CoquiEngine

    # An explicit path also keeps RealtimeTTS from reading COQUI_MODEL_PATH behind our back. Note that
    # CoquiEngine sets the process-wide multiprocessing start method to "spawn" and runs its model in a
    # child process per instance.
    return CoquiEngine(
        voice=config.voice or "",
        language=config.language,
        specific_model=config.specific_model,
        local_models_path=str(_coqui_models_path(config)),
        device=config.device,
    )


def _create_kokoro(config: KokoroConfig, settings: Settings) -> BaseEngine:
    from RealtimeTTS.engines.kokoro_engine import KokoroEngine

    return KokoroEngine(voice=config.voice, default_speed=config.speed)


def _create_edge(config: EdgeConfig, settings: Settings) -> BaseEngine:
    from RealtimeTTS.engines.edge_engine import EdgeEngine, EdgeVoice

    engine = EdgeEngine()
    # Set directly: EdgeEngine.set_voice downloads the whole voice list to match a name.
    engine.current_voice = EdgeVoice(config.voice)
    return engine


@functools.cache
def _gtts_pcm_engine() -> type[BaseEngine]:
    """GTTSEngine that decodes in memory and delivers exactly what it reports.

    RealtimeTTS 0.8.10's GTTSEngine writes every instance's audio to the same
    file in the temp directory (two slots overwrite each other) and reports
    22050 Hz whatever rate the decoded MP3 has. This one decodes in memory and
    resamples to :data:`GTTS_RATE`, so several slots are safe and the rate is true.
    """
    from RealtimeTTS.engines.gtts_engine import GTTSEngine

    class GTTSPcmEngine(GTTSEngine):  # type: ignore[misc]
        def get_stream_info(self) -> tuple[int, int, int]:
            return PA_INT16, 1, GTTS_RATE

        def synthesize(self, text: str, sentence_count: int = 0) -> bool:
            from gtts import gTTS
            from pydub import AudioSegment

            super(GTTSEngine, self).synthesize(text, sentence_count)  # BaseEngine's bookkeeping only
            mp3 = io.BytesIO()
            gTTS(text=text, lang=self.voice.language, tld=self.voice.tld).write_to_fp(mp3)
            mp3.seek(0)
            audio = AudioSegment.from_file(mp3, format="mp3")
            audio = audio.set_channels(1).set_sample_width(2).set_frame_rate(GTTS_RATE)
            self.queue.put(audio.raw_data)
            return True

    return GTTSPcmEngine


def _create_gtts(config: GTTSConfig, settings: Settings) -> BaseEngine:
    from RealtimeTTS.engines.gtts_engine import GTTSVoice

    return _gtts_pcm_engine()(voice=GTTSVoice(language=config.language, tld=config.tld))


def _create_chatterbox(config: ChatterboxConfig, settings: Settings) -> BaseEngine:
    from RealtimeTTS.engines.chatterbox_engine import ChatterboxEngine, ChatterboxVoice

    voice = ChatterboxVoice(audio_prompt_path=config.voice) if config.voice else None
    # RealtimeTTS defaults to "cuda" even where there is none; ask the hardware instead.
    device = config.device or detect_device().kind
    return ChatterboxEngine(voice=voice, device=device, model_path=config.model_path)


def _create_piper(config: PiperConfig, settings: Settings) -> BaseEngine:
    from RealtimeTTS.engines.piper_engine import PiperEngine, PiperVoice

    executable = _piper_executable(config, shutil.which)
    if executable is None or not config.model_path:
        # Without an explicit path RealtimeTTS would run "piper.exe", which exists on Windows only.
        problems = "; ".join(_piper_problems(config, shutil.which))
        raise EngineLoadError(f"engine 'piper' cannot start: {problems}", engine="piper")
    voice = PiperVoice(model_file=config.model_path, config_file=_piper_config_path(config))
    return PiperEngine(piper_path=executable, voice=voice)


# -- the catalog ----------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class CatalogEntry:
    """One engine: its description, its needs, its options, and how to build it."""

    name: str
    description: str
    #: The RealtimeTTS extra that installs its Python packages (``None``: nothing to install).
    extra: str | None
    #: Import names that must be importable; checked with ``find_spec``, never imported.
    modules: tuple[str, ...]
    #: Environment variables that must be set (read through ``Settings``).
    env: tuple[str, ...]
    capabilities: Capabilities
    config_class: type[EngineConfig]
    #: Slots at most when sizing from the hardware on a CPU: each instance holds a model,
    #: and one instance already keeps every core busy.
    cpu_slots: int | None = None
    _factory: Callable[[Any, Settings], BaseEngine] = attrs.field(alias="factory", repr=False)
    _check: Callable[[Any, _Probe], list[str]] = attrs.field(alias="check", default=_no_check, repr=False)

    @property
    def install(self) -> str | None:
        """The command that installs this engine's Python packages."""
        return f'pip install "realtimetts[{self.extra}]"' if self.extra else None

    def default_config(self, settings: Settings) -> EngineConfig:
        """The config used when a switch gives none (may depend on settings, as Chatterbox's does)."""
        return parse_config(self.name, {}, settings=settings)

    def availability(
        self,
        settings: Settings,
        config: EngineConfig | None = None,
        *,
        find_spec: FindSpec = importlib.util.find_spec,
        which: Which = shutil.which,
        hf_cache: Path | None = None,
    ) -> Availability:
        """Whether this engine can start here with ``config`` (default: its default config).

        Every problem is listed, each with what to do, so one look fixes them all.
        """
        probe = _Probe(find_spec, which, huggingface_cache() if hf_cache is None else hf_cache)
        problems = self._missing_packages(find_spec)
        unset = self.unset_env(settings)
        if unset:
            problems.append(f"set {' and '.join(unset)} in the server's environment")
        if config is None:
            try:
                config = self.default_config(settings)
            except InvalidParameter as error:
                problems.append(error.message)
        if config is not None:
            problems += self._check(config, probe)
        return Availability(False, "; ".join(problems)) if problems else Availability(True)

    def unset_env(self, settings: Settings) -> list[str]:
        """Names (never values) of the required variables that have no value."""
        return [var for var in self.env if not getattr(settings, _SETTING_FOR_ENV[var])]

    def _missing_packages(self, find_spec: FindSpec) -> list[str]:
        missing = [module for module in self.modules if not _installed(module, find_spec)]
        if not missing:
            return []
        hint = f"Python package(s) missing ({', '.join(missing)}): {self.install}"
        if "pyaudio" in missing:
            hint += " (PyAudio compiles against PortAudio: sudo apt-get install portaudio19-dev first)"
        return [hint]

    def create(self, config: EngineConfig, settings: Settings) -> BaseEngine:
        """Build one engine instance (blocking: models load here, so call it in a worker thread).

        Raises :class:`EngineLoadError` with what to do when a package or key is
        missing, or when the engine fails to start; the library's own error is
        the chained cause, for the log.
        """
        if not isinstance(config, self.config_class):
            raise TypeError(f"engine {self.name!r} takes a {self.config_class.__name__}")
        unset = self.unset_env(settings)
        if unset:
            raise EngineLoadError(f"engine {self.name!r} needs {' and '.join(unset)} to be set", engine=self.name)
        try:
            return self._factory(config, settings)
        except EngineLoadError:
            raise
        except ImportError as error:
            missing = f" (missing module: {error.name})" if error.name else ""
            fix = f"; install it with: {self.install}" if self.install else ""
            message = f"engine {self.name!r} cannot be loaded{missing}{fix}"
            raise EngineLoadError(message, engine=self.name) from error
        except Exception as error:
            raise EngineLoadError(
                f"engine {self.name!r} failed to start; see the server log", engine=self.name
            ) from error

    def default_slots(self, device: Device) -> int:
        """Slots when none are configured, from the hardware (see :func:`tts_trio.engines.hardware.default_slots`)."""
        slots = hardware_default_slots(device, gpu=self.capabilities.gpu)
        if device.kind == "cpu" and self.cpu_slots is not None:
            slots = min(slots, self.cpu_slots)
        return slots

    def describe(
        self,
        settings: Settings,
        *,
        find_spec: FindSpec = importlib.util.find_spec,
        which: Which = shutil.which,
        hf_cache: Path | None = None,
    ) -> dict[str, Any]:
        """This engine as JSON for ``GET /v1/engines``: no key values, only variable names."""
        try:
            config: dict[str, Any] | None = attrs.asdict(self.default_config(settings))
        except InvalidParameter:
            config = None
        availability = self.availability(settings, find_spec=find_spec, which=which, hf_cache=hf_cache)
        return {
            "name": self.name,
            "description": self.description,
            "capabilities": self.capabilities.to_dict(),
            **availability.to_dict(),
            "install": self.install,
            "env": list(self.env),
            "config": config,
        }


def _rtts(extra: str, *modules: str) -> dict[str, Any]:
    """The package fields of a RealtimeTTS engine: every one imports PyAudio at module level."""
    return {"extra": extra, "modules": ("pyaudio", *modules)}


CATALOG: dict[str, CatalogEntry] = {
    entry.name: entry
    for entry in [
        CatalogEntry(
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
            ),
            config_class=SystemConfig,
            factory=_create_system,
            check=_check_system,
        ),
        CatalogEntry(
            name="azure",
            description="Microsoft Azure Speech neural voices (cloud; needs a key and a region)",
            **_rtts("azure", "azure.cognitiveservices.speech", "requests"),
            env=("AZURE_SPEECH_KEY", "AZURE_SPEECH_REGION"),
            capabilities=Capabilities(
                streaming="chunk", cloning=False, languages=("multilingual",), sample_rate=16000, gpu="no", network=True
            ),
            config_class=AzureConfig,
            factory=_create_azure,
        ),
        CatalogEntry(
            name="openai",
            description="OpenAI text-to-speech: tts-1, tts-1-hd, gpt-4o-mini-tts (cloud; needs a key)",
            **_rtts("openai", "openai"),
            env=("OPENAI_API_KEY",),
            capabilities=Capabilities(
                streaming="chunk",
                cloning=False,
                languages=("multilingual",),
                sample_rate=OPENAI_PCM_RATE,
                gpu="no",
                network=True,
            ),
            config_class=OpenAIConfig,
            factory=_create_openai,
        ),
        CatalogEntry(
            name="elevenlabs",
            description="ElevenLabs voices (cloud; needs a key; sends MP3)",
            **_rtts("elevenlabs", "elevenlabs"),
            env=("ELEVENLABS_API_KEY",),
            capabilities=Capabilities(
                streaming="chunk", cloning=False, languages=("multilingual",), sample_rate=None, gpu="no", network=True
            ),
            config_class=ElevenlabsConfig,
            factory=_create_elevenlabs,
        ),
        CatalogEntry(
            name="coqui",
            description="Coqui XTTS v2: local neural voices cloned from a short WAV, 17 languages; a GPU is advised",
            **_rtts("coqui", "TTS", "torch"),
            env=(),
            capabilities=Capabilities(
                streaming="chunk",
                cloning=True,
                languages=("multilingual",),
                sample_rate=24000,
                gpu="optional",
                network=False,
            ),
            config_class=CoquiConfig,
            cpu_slots=1,
            factory=_create_coqui,
            check=_check_coqui,
        ),
        CatalogEntry(
            name="kokoro",
            description="Kokoro-82M: a small local neural model, quick even on a CPU",
            **_rtts("kokoro", "kokoro", "torch"),
            env=(),
            capabilities=Capabilities(
                streaming="sentence",
                cloning=False,
                languages=("en-us", "en-gb", "es", "fr", "hi", "it", "ja", "pt-br", "zh"),
                sample_rate=24000,
                gpu="optional",
                network=False,
            ),
            config_class=KokoroConfig,
            cpu_slots=1,
            factory=_create_kokoro,
            check=_check_kokoro,
        ),
        CatalogEntry(
            name="edge",
            description="Microsoft Edge's online neural voices (cloud; no key; sends MP3)",
            **_rtts("edge", "edge_tts"),
            env=(),
            capabilities=Capabilities(
                streaming="chunk", cloning=False, languages=("multilingual",), sample_rate=None, gpu="no", network=True
            ),
            config_class=EdgeConfig,
            factory=_create_edge,
        ),
        CatalogEntry(
            name="gtts",
            description="Google Translate's voice through gTTS (cloud; no key; one request per sentence)",
            **_rtts("gtts", "gtts", "pydub"),
            env=(),
            capabilities=Capabilities(
                streaming="sentence",
                cloning=False,
                languages=("multilingual",),
                sample_rate=GTTS_RATE,
                gpu="no",
                network=True,
            ),
            config_class=GTTSConfig,
            factory=_create_gtts,
            check=_check_gtts,
        ),
        CatalogEntry(
            name="chatterbox",
            description="Resemble AI Chatterbox Turbo: local neural voices cloned from a WAV, English; GPU advised",
            **_rtts("chatterbox", "chatterbox", "torch"),
            env=(),
            capabilities=Capabilities(
                streaming="sentence", cloning=True, languages=("en",), sample_rate=24000, gpu="optional", network=False
            ),
            config_class=ChatterboxConfig,
            cpu_slots=1,
            factory=_create_chatterbox,
            check=_check_chatterbox,
        ),
        CatalogEntry(
            name="piper",
            description="Piper: fast local neural voices from .onnx voice files, spoken by the piper executable",
            **_rtts("piper"),
            env=(),
            capabilities=Capabilities(
                streaming="sentence",
                cloning=False,
                languages=("multilingual",),
                sample_rate=None,
                gpu="no",
                network=False,
            ),
            config_class=PiperConfig,
            factory=_create_piper,
            check=_check_piper,
        ),
    ]
}


def catalog_entry(name: str) -> CatalogEntry:
    """The entry for ``name``; an unknown name is a 404 that lists the known ones."""
    try:
        return CATALOG[name]
    except KeyError:
        raise UnknownEngine(f"unknown engine {name!r}; known engines: {', '.join(CATALOG)}", engine=name) from None


# -- parsing a switch request's config -----------------------------------------------------------


def parse_config(engine: str, data: object, *, settings: Settings) -> EngineConfig:
    """Structure and validate ``data`` (decoded JSON, or ``None`` for all defaults) as ``engine``'s config.

    Strict on purpose: unknown keys and wrong types are a 422 that names the
    field (``config.voice: expected a string``), never a silent conversion.
    """
    entry = catalog_entry(engine)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InvalidParameter("config: expected an object", field="config")
    data = {**_settings_defaults(entry, data, settings), **data}
    try:
        return _converter.structure(data, entry.config_class)
    except cattrs.ClassValidationError as group:
        message, field = _describe(group)
        raise InvalidParameter(message, field=field) from None


def _settings_defaults(entry: CatalogEntry, data: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Defaults that come from server settings rather than the config class (Chatterbox's model type)."""
    if entry.config_class is not ChatterboxConfig or "model_type" in data:
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


def _describe(group: cattrs.ClassValidationError) -> tuple[str, str]:
    """The first problem as (message, field), the field written as the client sent it."""
    with_notes, others = group.group_exceptions()
    for exc, note in with_notes:
        field = f"config.{note.name}"
        if isinstance(exc, KeyError):
            return f"{field}: required field missing", field
        return f"{field}: {exc}", field
    for exc in others:
        if isinstance(exc, ForbiddenExtraKeysError):
            return f"config: unknown field(s): {', '.join(sorted(exc.extra_fields))}", "config"
        if isinstance(exc, _InvalidConfig):
            return f"config.{exc.field}: {exc}", f"config.{exc.field}"
    return "config: invalid", "config"


_converter = strict_converter()
