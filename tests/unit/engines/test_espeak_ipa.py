"""IPA on espeak-ng: mapped to its mnemonics, spoken as the word it spells, timed as the IPA."""

from __future__ import annotations

import queue
import subprocess
from collections.abc import Iterator

import numpy as np
import pytest

from tts_trio.engines.espeak import EspeakEngine
from tts_trio.engines.espeak_ipa import to_mnemonics
from tts_trio.engines.phonemes import mark

#: Words whose espeak-ng IPA maps back to exactly its own mnemonics (en-us).
EXACT = [
    "garden",
    "chicken",
    "tomato",
    "water",
    "hello",
    "thought",
    "nurse",
    "hair",
    "here",
    "tour",
    "boy",
    "house",
    "judge",
    "church",
    "sing",
    "measure",
    "thin",
]


def espeak(*args: str) -> str:
    return subprocess.run(["espeak-ng", "-v", "en-us", "-q", *args], capture_output=True, text=True).stdout.strip()


@pytest.mark.parametrize("word", EXACT)
def test_espeaks_own_ipa_maps_back_to_its_mnemonics(word: str) -> None:
    assert to_mnemonics(espeak("--ipa", word)) == espeak("-x", word)


@pytest.mark.parametrize("ipa", ["ǃ", "t˥", "ʘa", "", "   "])
def test_ipa_without_mnemonics_is_refused_whole(ipa: str) -> None:
    assert to_mnemonics(ipa) is None


@pytest.fixture
def engine() -> Iterator[EspeakEngine]:
    engine = EspeakEngine(voice="en-us")
    engine.start()
    try:
        yield engine
    finally:
        engine.shutdown()


def spoken(engine: EspeakEngine, text: str) -> tuple[bytes, list[str]]:
    engine.queue = queue.Queue()
    engine.timings = queue.Queue()
    assert engine.synthesize(text) is True
    pcm = b""
    while not engine.queue.empty():
        pcm += engine.queue.get_nowait()
    return pcm, [engine.timings.get_nowait().word for _ in range(engine.timings.qsize())]


def unlike(first: bytes, second: bytes) -> float:
    """How different two utterances sound: their loudness envelopes (10 ms frames) apart, relative.

    espeak-ng varies a little from call to call (the same text gives other
    bytes): the same words measure about 0.05 apart, one word changed 0.3.
    """
    envelopes = []
    for pcm in (first, second):
        samples = np.abs(np.frombuffer(pcm, dtype="<i2").astype(np.float64))
        frames = len(samples) // 220
        envelopes.append(samples[: frames * 220].reshape(frames, 220).mean(axis=1))
    size = min(map(len, envelopes))
    a, b = (envelope[:size] for envelope in envelopes)
    return float(np.mean(np.abs(a - b)) / np.mean(a))


def test_a_span_is_spoken_as_the_word_its_ipa_spells_and_timed_as_its_ipa(engine: EspeakEngine) -> None:
    ipa = espeak("--ipa", "garden")
    real, real_words = spoken(engine, "They played in the garden after dinner.")
    marked, words = spoken(engine, f"They played in the {mark(ipa, 'zork')} after dinner.")
    written, _ = spoken(engine, "They played in the zork after dinner.")
    assert unlike(real, marked) < 0.15 < 0.2 < unlike(real, written)
    # Timed as the plain sentence is (espeak-ng gives "the" no word of its own), the IPA for "garden".
    assert "garden" in real_words
    assert words == [ipa if word == "garden" else word for word in real_words]


def test_brackets_in_the_text_are_never_phonemes(engine: EspeakEngine) -> None:
    ipa = espeak("--ipa", "garden")
    # Next to a span (phoneme input on), "[[...]]" from the text loses its brackets: read, not used as phonemes.
    with_span, _ = spoken(engine, f"[[tS'IkIn]] {mark(ipa, 'zork')}")
    bare, _ = spoken(engine, f"{mark(ipa, 'zork')}")
    # Read as letters, "tS'IkIn" takes well over a second; as phonemes ("chicken") under half of one.
    assert len(with_span) > len(bare) + 22050


@pytest.mark.parametrize(
    "ipa",
    [
        "ə" * 400,  # one word longer than espeak-ng's phoneme buffer (1.51 crashes at some 380)
        "ɡˈɑːɹdən " * 40,  # words of a fine size, too many of them for one span
        "ˈ",  # stress alone: nothing would be said
        "ˈ ː",
    ],
)
def test_ipa_espeak_cannot_take_safely_is_refused(ipa: str) -> None:
    assert to_mnemonics(ipa) is None


def test_no_bracket_of_the_text_survives_next_to_a_span(engine: EspeakEngine) -> None:
    ipa = espeak("--ipa", "garden")
    for opening in ("[\u00ad[", "[\u200c[", "[[", "[[["):
        text = f"{opening}D'Is Iz s'mVgld]\u00ad] {mark(ipa, 'zork')}"
        sneaky, words = spoken(engine, text)
        honest, _ = spoken(engine, f"(D'Is Iz s'mVgld) {mark(ipa, 'zork')}")
        # Read as text, like its bracket-free twin: not the three short words of phoneme input.
        assert abs(len(sneaky) - len(honest)) < 0.1 * len(honest), opening
        assert words[-1] == ipa


def test_a_span_of_several_words_is_one_timing(engine: EspeakEngine) -> None:
    ipa = espeak("--ipa", "New York")
    _, words = spoken(engine, f"{mark(ipa, 'NY')} is big.")
    assert words == [ipa, "is", "big"]
