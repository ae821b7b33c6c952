"""Marked phoneme spans: only the server makes them, engines read them back exactly."""

from __future__ import annotations

from tts_trio.engines.phonemes import MARKS, as_ipa, has_spans, mark, parts, pieces, written
from tts_trio.synthesis.params import clean_text


def test_a_span_carries_its_ipa_and_its_written_text() -> None:
    text = f"I like {mark('tʃˈɪkɪn', 'zork')} soup and {mark('njuː jɔːk', 'NY')}."
    assert parts(text) == [
        ("I like ", False),
        ("tʃˈɪkɪn", True),
        (" soup and ", False),
        ("njuː jɔːk", True),
        (".", False),
    ]
    assert written(text) == "I like zork soup and NY."
    assert as_ipa(text) == "I like tʃˈɪkɪn soup and njuː jɔːk."
    spans = [(piece.ipa, piece.written) for piece in pieces(text) if piece.ipa is not None]
    assert spans == [("tʃˈɪkɪn", "zork"), ("njuː jɔːk", "NY")]


def test_marks_inside_what_is_marked_cannot_open_or_close_a_span() -> None:
    tricky = mark(f"a{MARKS[2]}b{MARKS[0]}c", f"x{MARKS[1]}y")
    assert len([piece for piece in pieces(tricky) if piece.ipa is not None]) == 1
    assert parts(tricky) == [("a b c", True)]


def test_stray_marks_are_spaces_not_spans() -> None:
    assert not has_spans("plain")
    assert parts(f"a {MARKS[0]}b{MARKS[1]} c") == [("a  b  c", False)]
    assert written(f"a{MARKS[2]}b") == "a b"


def test_client_text_loses_every_mark() -> None:
    cleaned = clean_text(f"a {mark('ʃ', 'x')} b")
    assert not any(mark_char in cleaned for mark_char in MARKS)
    assert not has_spans(cleaned)
