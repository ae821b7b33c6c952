"""The ``piper`` engine in process: Piper voices on onnxruntime, on the RealtimeTTS engine contract.

Why not RealtimeTTS's own ``PiperEngine``: it runs the ``piper`` executable
for every sentence (the model is loaded again each time), hands the whole
sentence over as one item, ignores ``stop()`` and imports PyAudio when it is
imported. This engine keeps the contract (``synthesize`` puts 16-bit PCM on
``self.queue`` and word timings on ``self.timings``; ``stop`` from another
thread) but

* shares one onnxruntime session per voice across every slot, and runs a
  sentence that starts while no other runs on the voice's solo session, one
  thread per core (:func:`~tts_trio.engines.piper_voices.load_voice`);
* phonemizes with Piper's API and runs the model itself with a per-sentence
  ``onnxruntime.RunOptions``, so ``stop()`` sets ``terminate`` and the run
  aborts within milliseconds, leaving the session usable; nothing is put on
  the queue after a stop, so no audio of a stopped sentence reaches anyone;
* reports word timings from the model's phoneme durations when the voice was
  loaded with the alignment output, else one timing for the sentence;
* resamples a voice whose rate differs from the one the pool was opened
  with (the pool's format is fixed when the engine starts).

Request parameters: ``speed`` (0.25–4, 1 normal) becomes ``length_scale =
voice length_scale / speed``; ``temperature`` (0–2) scales the voice's
``noise_scale`` so that the request default 0.7 gives the voice's own value
and 0 removes that noise (the rhythm still varies a little: ``noise_w``, the
duration noise, stays as the voice sets it).

Licence: ``piper-tts`` is GPL-3.0-or-later (and links espeak-ng); it is an
optional extra, imported only when this engine runs.
"""

from __future__ import annotations

import math
import os
import re
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
from RealtimeTTS.engines.base_engine import BaseEngine, TimingInfo  # imports no PyAudio

from tts_trio.engines.phonemes import as_ipa, parts, without_brackets
from tts_trio.engines.piper_voices import (
    INSTALL_HINT,
    LoadedVoice,
    PiperError,
    VoiceFiles,
    available_providers,
    discover_voices,
    load_voice,
    model_inputs,
    resolve_voice,
    select_providers,
)

#: PyAudio's ``paInt16``; RealtimeTTS reports formats as PyAudio constants.
PA_INT16 = 8
#: The request temperature that gives the voice's own noise_scale (the server's request default).
TEMPERATURE_NEUTRAL = 0.7
MIN_SPEED, MAX_SPEED = 0.25, 4.0
#: Samples per queued chunk (~0.19 s at 22050 Hz): small enough that a stop between chunks cuts quickly.
CHUNK_SAMPLES = 4096
_INT16_MAX = 32767.0
_PUNCTUATION_PHONEMES = set(".,;:!?¡¿—…\"«»“”()-'")
_WORDLIKE = re.compile(r"\w")


def piper_speed_parameters(speed: float) -> dict[str, Any]:
    """The engine's voice parameters for a request's speed, clamped to what a voice can do."""
    return {"speed": max(MIN_SPEED, min(MAX_SPEED, float(speed)))}


def noise_scale_for(temperature: float, voice_noise_scale: float) -> float:
    """A request temperature as Piper's noise scale: 0.7 keeps the voice's own, 0 removes the noise."""
    return voice_noise_scale * max(0.0, min(2.0, temperature)) / TEMPERATURE_NEUTRAL


class PiperEngine(BaseEngine):  # type: ignore[misc]
    """Piper voices in process; mono 16-bit PCM at the first voice's rate (22050 Hz for "medium" voices)."""

    def __init__(
        self,
        voice: str | None = None,
        *,
        voice_dirs: Sequence[str | os.PathLike[str]] = (),
        packages: bool = True,
        alignment: bool = True,
        normalize: bool = False,
        device: str | None = None,
        gpus: int = 0,
        providers: Sequence[str] | None = None,
        solo_threads: int | None = None,
    ) -> None:
        # BaseEngine's metaclass runs BaseEngine.__init__ after this one (queue, timings,
        # stop_synthesis_event), then post_init: only our own attributes here.
        self._voices = discover_voices(voice_dirs, packages=packages)
        if not self._voices:
            raise PiperError(f"no piper voice found: {INSTALL_HINT}")
        self._files = resolve_voice(voice, self._voices) if voice else next(iter(self._voices.values()))
        self._providers = (
            list(providers)
            if providers is not None
            else select_providers(device, available=available_providers(), gpus=gpus)
        )
        self._alignment = alignment
        self._normalize = normalize
        self._solo_threads = solo_threads
        #: The pool's rate, fixed now: a voice chosen later with another rate is resampled to it.
        self._output_rate = self._files.sample_rate()
        self._speed = 1.0
        self._temperature = TEMPERATURE_NEUTRAL
        self._state = threading.Lock()
        self._run_options: Any = None

    def post_init(self) -> None:
        self.engine_name = "piper"
        self.provides_word_timings = self._alignment

    # -- lifecycle -------------------------------------------------------
    def start(self) -> None:
        """Load the voice now (blocking, seconds the first time in a process) so the first request is quick."""
        self._loaded()

    def _loaded(self) -> LoadedVoice:
        return load_voice(
            self._files, alignment=self._alignment, providers=self._providers, solo_threads=self._solo_threads
        )

    @property
    def device(self) -> str:
        """Where the voices run (``cuda`` or ``cpu``), for ``/health``."""
        return "cuda" if self._providers[0] == "CUDAExecutionProvider" else "cpu"

    def shutdown(self) -> None:
        """Stop work in progress; the shared sessions stay loaded for other instances."""
        self.stop()

    def stop(self) -> None:
        """End the sentence in progress now (thread-safe): the model run is terminated."""
        super().stop()
        with self._state:
            if self._run_options is not None:
                self._run_options.terminate = True

    # -- RealtimeTTS contract ------------------------------------------
    def get_stream_info(self) -> tuple[int, int, int]:
        return PA_INT16, 1, self._output_rate

    def get_voices(self) -> list[dict[str, Any]]:
        return [files.describe() for files in self._voices.values()]

    def get_variants(self) -> list[str]:
        return []

    @property
    def voice_name(self) -> str:
        return self._files.name

    def set_voice(self, voice: Any) -> None:
        """Select a voice by name or unique name part ("joe"); it loads on its first sentence."""
        name = str(getattr(voice, "name", voice))
        if name != self._files.name:
            self._files = resolve_voice(name, self._voices)

    def set_voice_parameters(self, **voice_parameters: Any) -> None:
        """``speed`` and ``temperature``; anything else is refused so a typo cannot pass silently."""
        unknown = set(voice_parameters) - {"speed", "temperature"}
        if unknown:
            raise ValueError(f"piper takes speed and temperature, not {', '.join(sorted(unknown))}")
        if "speed" in voice_parameters:
            speed = float(voice_parameters["speed"])
            if not (math.isfinite(speed) and speed > 0):
                raise ValueError(f"speed must be positive, got {speed!r}")
            self._speed = max(MIN_SPEED, min(MAX_SPEED, speed))
        if "temperature" in voice_parameters:
            temperature = float(voice_parameters["temperature"])
            if not math.isfinite(temperature):
                raise ValueError(f"temperature must be a number, got {temperature!r}")
            self._temperature = temperature

    def scales(self, config: Any) -> tuple[float, float, float]:
        """(noise_scale, length_scale, noise_w_scale) for the next sentence from the voice's ``config``."""
        noise = noise_scale_for(self._temperature, float(config.noise_scale))
        return noise, float(config.length_scale) / self._speed, float(config.noise_w_scale)

    def synthesize(self, text: str, sentence_count: int = 0) -> bool:
        """Speak ``text``: PCM bytes on ``self.queue``, ``TimingInfo`` on ``self.timings``.

        True when spoken to the end, False when ``stop()`` interrupted it (then
        nothing more is put). Raises :class:`PiperError` when the model fails.
        """
        import onnxruntime  # type: ignore[import-untyped]

        super().synthesize(text)  # clears stop_synthesis_event
        loaded = self._loaded()
        voice = loaded.voice
        # Piper reads "[[ ... ]]" as raw phonemes (IPA): only the server's marked spans reach the model
        # that way (tts_trio.engines.phonemes); the text's own square brackets become parentheses.
        safe = "".join(f"[[ {part} ]]" if is_ipa else without_brackets(part) for part, is_ipa in parts(text))
        sentences = [phonemes for phonemes in voice.phonemize(safe) if phonemes]
        spans: list[tuple[int, int]] = []
        aligned = loaded.has_alignment
        position = 0  # samples at the voice's rate
        for phonemes in sentences:
            phoneme_ids = voice.phonemes_to_ids(phonemes)
            run_options = onnxruntime.RunOptions()
            with self._state:
                if self.stop_synthesis_event.is_set():
                    return False
                self._run_options = run_options
            try:
                audio, id_samples = self._run(loaded, phoneme_ids, run_options)
            except Exception as error:
                if self.stop_synthesis_event.is_set():
                    return False
                raise PiperError(f"piper model failed: {error}") from error
            finally:
                with self._state:
                    self._run_options = None
            if aligned and id_samples is not None:
                found = phoneme_spans(voice.config.phoneme_id_map, phonemes, phoneme_ids, id_samples, position)
                aligned = found is not None
                spans += found or []
            else:
                aligned = False
            if not self._put_audio(self._finish(audio, loaded.sample_rate)):
                return False
            position += len(audio)
        if self.stop_synthesis_event.is_set():
            return False
        self._put_timings(as_ipa(text), spans if aligned else None, position, loaded.sample_rate)
        return True

    def _run(self, loaded: LoadedVoice, phoneme_ids: list[int], run_options: Any) -> tuple[Any, Any]:
        """Piper's ``phoneme_ids_to_audio`` with our run options, so that ``stop()`` reaches the run."""
        config = loaded.voice.config
        inputs = model_inputs(config, phoneme_ids, self.scales(config))
        with loaded.session_for_run() as session:
            result = session.run(None, inputs, run_options)
        audio = np.asarray(result[0]).squeeze()
        samples = None
        if loaded.has_alignment and len(result) > 1:
            samples = (np.asarray(result[1]).squeeze() * config.hop_length).astype(np.int64)
        return audio, samples

    def _finish(self, audio: Any, rate: int) -> Any:
        """Float audio → int16 at the pool's rate, peak-normalised when configured."""
        audio = np.asarray(audio, dtype=np.float32)
        if self._normalize and audio.size:
            peak = float(np.max(np.abs(audio)))
            audio = audio / peak if peak > 1e-8 else np.zeros_like(audio)
        if rate != self._output_rate:
            import soxr

            audio = soxr.resample(audio, rate, self._output_rate)
        return (np.clip(audio, -1.0, 1.0) * _INT16_MAX).astype(np.int16)

    def _put_audio(self, pcm: Any) -> bool:
        for start in range(0, len(pcm), CHUNK_SAMPLES):
            if self.stop_synthesis_event.is_set():
                return False  # no audio after a stop
            self.queue.put(pcm[start : start + CHUNK_SAMPLES].tobytes())
        return True

    def _put_timings(self, text: str, spans: list[tuple[int, int]] | None, total: int, rate: int) -> None:
        words = text_words(text)
        if spans is None:
            if words and total:
                self.timings.put(TimingInfo(0.0, total / rate, text.strip()))
            return
        for word, start, end in map_words(words, spans):
            self.timings.put(TimingInfo(start / rate, end / rate, word))


# -- word timings ------------------------------------------------------------------------------


def phoneme_spans(
    id_map: Any, phonemes: Sequence[str], phoneme_ids: Sequence[int], id_samples: Any, offset: int
) -> list[tuple[int, int]] | None:
    """(start, end) samples of each spoken word, from samples per phoneme id (``None`` if they do not line up).

    Each phoneme owns its ids plus the padding after it, as in
    ``PiperVoice.synthesize``; espeak separates words with ``" "``, and
    BOS/EOS and punctuation carry pauses, not words.
    """
    id_samples = np.atleast_1d(id_samples)
    if len(id_samples) != len(phoneme_ids):
        return None
    pad = list(id_map.get("_", []))
    index, position = 0, offset
    spans: list[tuple[int, int]] = []
    start: int | None = None
    last_end = position
    for phoneme in ["^", *phonemes, "$"]:
        expected = list(id_map.get(phoneme, [])) + (pad if phoneme != "$" else [])
        if list(phoneme_ids[index : index + len(expected)]) != expected:
            return None
        samples = int(id_samples[index : index + len(expected)].sum())
        index += len(expected)
        if phoneme in (" ", "^", "$") or all(char in _PUNCTUATION_PHONEMES for char in phoneme):
            if start is not None:
                spans.append((start, last_end))
                start = None
        else:
            start = position if start is None else start
            last_end = position + samples
        position += samples
    return spans


def text_words(text: str) -> list[str]:
    """The words of ``text`` as the client wrote them (tokens with a letter or digit)."""
    return [token for token in text.split() if _WORDLIKE.search(token)]


def map_words(words: Sequence[str], spans: Sequence[tuple[int, int]]) -> list[tuple[str, int, int]]:
    """Word → (start, end) samples: one to one when espeak spoke as many words as were written.

    Otherwise (a number read as several words, an abbreviation) the spoken
    stretch is shared out by word length: in order, covering the speech, approximate.
    """
    if not words or not spans:
        return []
    if len(words) == len(spans):
        return [(word, start, end) for word, (start, end) in zip(words, spans, strict=True)]
    begin, end = spans[0][0], spans[-1][1]
    weights = [len(word) + 1 for word in words]
    total, acc = sum(weights), 0
    result = []
    for word, weight in zip(words, weights, strict=True):
        first = begin + (end - begin) * acc // total
        acc += weight
        result.append((word, first, begin + (end - begin) * acc // total))
    return result


__all__ = ["PiperEngine", "PiperError", "VoiceFiles", "noise_scale_for", "piper_speed_parameters"]
