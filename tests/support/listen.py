"""Listening to what the server said: 16-bit PCM at any rate → words (pocketsphinx), and word error rates (jiwer).

Why a recogniser: a neural voice can produce audio of the right length and
loudness that says the wrong thing (another request's sentence, half a
sentence, noise), and only listening tells. pocketsphinx 5.1.1 ships an
English acoustic model, dictionary and language model, so this runs offline.
It hears Piper's voices well and espeak-ng's poorly, so use it on Piper only.
A ``Decoder`` is not safe to share between threads: one is kept per thread.
"""

from __future__ import annotations

import re
import threading
from typing import Any

import numpy as np

ASR_RATE = 16_000
_local = threading.local()

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def number_words(n: int) -> str:
    """0 ≤ n < 10**9 in English words ("forty two"), as a recogniser writes them."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    for size, name in ((10**6, "million"), (1000, "thousand"), (100, "hundred")):
        if n >= size:
            head, rest = divmod(n, size)
            return f"{number_words(head)} {name}" + ("" if rest == 0 else " " + number_words(rest))
    raise ValueError(n)


def normalise(text: str) -> str:
    """Lowercase, digits as words, punctuation dropped (apostrophes inside words kept), spaces collapsed."""
    text = text.lower().replace("’", "'")
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)
    text = re.sub(r"\d{1,9}", lambda match: f" {number_words(int(match.group()))} ", text)
    text = re.sub(r"[-–—/]", " ", text)
    text = re.sub(r"[^\w\s']", " ", text)
    text = re.sub(r"(?<!\w)'|'(?!\w)", " ", text)
    return " ".join(text.split())


def to_16k(pcm: bytes, rate: int) -> bytes:
    """Mono int16 PCM at ``rate`` → int16 PCM at 16 kHz, what the recogniser's model expects."""
    samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype=np.int16)
    if rate == ASR_RATE:
        return samples.tobytes()
    import soxr

    resampled = soxr.resample(samples.astype(np.float32) / 32768.0, rate, ASR_RATE)
    return bytes(np.clip(resampled * 32768.0, -32768, 32767).astype(np.int16).tobytes())


def _decoder() -> Any:
    decoder = getattr(_local, "decoder", None)
    if decoder is None:
        from pocketsphinx import Decoder  # type: ignore[import-untyped]

        decoder = Decoder(samprate=ASR_RATE, logfn="/dev/null")
        _local.decoder = decoder
    return decoder


def transcribe(pcm: bytes, rate: int) -> str:
    """What pocketsphinx hears in mono 16-bit ``pcm`` at ``rate`` Hz (lowercase words)."""
    decoder = _decoder()
    decoder.start_utt()
    decoder.process_raw(to_16k(pcm, rate), full_utt=True)
    decoder.end_utt()
    hypothesis = decoder.hyp()
    return str(hypothesis.hypstr) if hypothesis is not None else ""


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate after :func:`normalise` on both sides (1.0 for an empty hypothesis)."""
    import jiwer

    ref, hyp = normalise(reference), normalise(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    if not hyp:
        return 1.0
    return float(jiwer.wer(ref, hyp))


def heard_words(pcm: bytes, rate: int) -> set[str]:
    return set(normalise(transcribe(pcm, rate)).split())
