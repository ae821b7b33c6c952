"""first_fragment: a long first sentence is cut at a clause boundary, and nothing else changes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tts_trio.synthesis.fragments import cut_first_sentence, first_fragment

LONG_WITH_CLAUSES = [
    "The committee met on Tuesday, and after a long discussion about the budget, it decided to postpone the vote.",
    "We checked every log file on the old server; it had restarted twice during the night without anyone noticing.",
    "Bring three things to the meeting: your laptop, the signed contract, and a list of open questions for us.",
    "The new release is faster – much faster – than the old one, and it uses less memory on every machine we tried.",
]


@pytest.mark.parametrize("sentence", LONG_WITH_CLAUSES)
def test_a_long_sentence_is_cut_inside_the_window_and_keeps_its_text(sentence: str) -> None:
    head, rest = first_fragment(sentence)
    assert rest, "a long sentence with a clause boundary in the window is cut"
    assert head + rest == sentence
    assert 40 <= len(head.strip()) <= 80
    assert len(rest.strip()) >= 20
    assert head.rstrip()[-1] in ",;:–—-"


def test_the_stronger_boundary_wins() -> None:
    sentence = "We checked every log file on the server, one by one; it had restarted twice in the night unnoticed."
    head, _ = first_fragment(sentence)
    assert head.rstrip().endswith(";")


def test_short_and_unbroken_sentences_are_left_alone() -> None:
    assert first_fragment("A short sentence, with a comma.") == ("A short sentence, with a comma.", "")
    plain = "This sentence has no clause boundary anywhere in it and it runs on for more than eighty characters."
    assert first_fragment(plain) == (plain, "")
    numbers = "The total came to 1,250,000 dollars and 30,000 cents after the final audit was done in full."
    assert first_fragment(numbers) == (numbers, "")


def test_a_tiny_rest_is_not_worth_a_cut() -> None:
    sentence = "It was a long and winding road through the hills and valleys of the north, until dawn."
    assert first_fragment(sentence) == (sentence, "")


def test_the_window_is_configurable() -> None:
    sentence = "First, a short clause; then a much longer one that goes on and on until the end of the line."
    head, rest = first_fragment(sentence, min_chars=5, max_chars=30, min_rest=10)
    assert head == "First, a short clause; " and rest == sentence[len(head) :]


async def test_only_the_first_sentence_of_a_stream_is_cut() -> None:
    async def stream() -> AsyncIterator[str]:
        for sentence in [LONG_WITH_CLAUSES[0], LONG_WITH_CLAUSES[1], "Short."]:
            yield sentence

    out = [sentence async for sentence in cut_first_sentence(stream())]
    head, rest = first_fragment(LONG_WITH_CLAUSES[0])
    assert out == [head, rest, LONG_WITH_CLAUSES[1], "Short."]


async def test_a_short_first_sentence_passes_as_it_is() -> None:
    async def stream() -> AsyncIterator[str]:
        yield "Hello there."
        yield LONG_WITH_CLAUSES[0]

    assert [sentence async for sentence in cut_first_sentence(stream())] == ["Hello there.", LONG_WITH_CLAUSES[0]]
