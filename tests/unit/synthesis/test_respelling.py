"""Timed words merged back into the words the client wrote."""

from __future__ import annotations

from tts_trio.audio.formats import WordTiming
from tts_trio.synthesis.respelling import Respeller, Respelling


def words(*spec: tuple[str, float, float]) -> tuple[WordTiming, ...]:
    return tuple(WordTiming(word, start, end) for word, start, end in spec)


def respeller(*pairs: tuple[str, str]) -> Respeller:
    found = [Respelling.of(spoken, original) for spoken, original in pairs]
    return Respeller([respelling for respelling in found if respelling is not None])


def test_a_run_of_spoken_words_becomes_the_original_word_spanning_them() -> None:
    respell = respeller(("engine x", "nginx"))
    timed = words(("We", 0.0, 0.2), ("run", 0.2, 0.4), ("engine", 0.4, 0.8), ("x", 0.8, 1.0), ("now", 1.0, 1.2))
    assert [(w.word, w.start, w.end) for w in respell(timed)] == [
        ("We", 0.0, 0.2),
        ("run", 0.2, 0.4),
        ("nginx", 0.4, 1.0),
        ("now", 1.0, 1.2),
    ]


def test_replacements_are_consumed_in_order_across_sentences() -> None:
    respell = respeller(("United States", "US"), ("engine x", "nginx"))
    first = respell(words(("the", 0, 1), ("United", 1, 2), ("States", 2, 3)))
    second = respell(words(("United", 3, 4), ("States", 4, 5), ("engine", 5, 6), ("x", 6, 7)))
    assert [w.word for w in first] == ["the", "US"]
    # The US replacement was used up: a later literal "United States" stays as it was said.
    assert [w.word for w in second] == ["United", "States", "nginx"]


def test_words_compare_by_letters_and_digits_and_a_mismatch_is_left_alone() -> None:
    respell = respeller(("twenty four seven", "24/7"))
    assert [w.word for w in respell(words(("Twenty", 0, 1), ("four,", 1, 2), ("seven.", 2, 3)))] == ["24/7"]
    other = respeller(("engine x", "nginx"))
    unchanged = words(("engines", 0, 1), ("x", 1, 2))
    assert other(unchanged) == unchanged


def test_nothing_to_respell_returns_the_words() -> None:
    timed = words(("a", 0, 1))
    assert Respeller([])(timed) == timed
    assert Respelling.of("...", "x") is None
