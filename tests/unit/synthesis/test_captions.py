"""Captions from sentence timings: cue splitting, wrapping, time formats, escaping, streamed numbering.

``webvtt-py`` is not among the project's dependencies, so the WebVTT output
is checked against the format with a strict regular-expression reading of
it (header, cue blocks, timestamps, tags) instead.
"""

from __future__ import annotations

import itertools
import re

import pytest

from tts_trio.audio.formats import WordTiming
from tts_trio.synthesis import captions
from tts_trio.synthesis.captions import Cue, cues, sentence_cues, srt_time, to_srt, to_vtt, vtt_time
from tts_trio.synthesis.pipeline import SentenceTimings


def timed(index: int, text: str, start: float, per_word: float = 0.3, *, words: bool = True) -> SentenceTimings:
    """A sentence whose words (punctuation stripped, as espeak reports them) last ``per_word`` seconds each."""
    tokens = text.split()
    timings = tuple(
        WordTiming(token.strip(".,!?"), round(start + i * per_word, 4), round(start + (i + 1) * per_word, 4))
        for i, token in enumerate(tokens)
    )
    end = round(start + len(tokens) * per_word, 4)
    return SentenceTimings(index, text, start, end, timings if words else ())


LONG = (
    "This is a much longer sentence that goes on and on, well past the forty-two character line width, "
    "so that it must be split into several cues at word boundaries."
)

_VTT_TS = r"\d{2,}:[0-5]\d:[0-5]\d\.\d{3}"
_VTT_CUE = re.compile(rf"(\d+)\n({_VTT_TS}) --> ({_VTT_TS})\n((?:[^\n]+\n){{1,2}})\n")
_CUE_TEXT = re.compile(rf"^(?:(?:<{_VTT_TS}>)?<c>[^<>&]*(?:&(?:amp|lt|gt);[^<>&]*)*</c> ?)+$")


def parse_vtt(document: str) -> list[tuple[int, float, float, list[str]]]:
    """A strict reading of the WebVTT this module writes: every byte accounted for."""
    assert document.startswith("WEBVTT\n\n")
    body = document[len("WEBVTT\n\n") :]
    result = []
    position = 0
    while position < len(body):
        match = _VTT_CUE.match(body, position)
        assert match is not None, f"not a cue at {body[position : position + 80]!r}"
        number, start, end, text = match.groups()
        lines = text.rstrip("\n").split("\n")
        start_s, end_s = to_seconds(start), to_seconds(end)
        assert start_s <= end_s
        last = start_s
        for line in lines:
            assert _CUE_TEXT.match(line), line
            for stamp in re.findall(rf"<({_VTT_TS})>", line):
                # Cue timestamps lie inside the cue, in order.
                assert last < to_seconds(stamp) < end_s
                last = to_seconds(stamp)
        result.append((int(number), start_s, end_s, lines))
        position = match.end()
    return result


def to_seconds(stamp: str) -> float:
    hours, minutes, rest = stamp.replace(",", ".").split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(rest)


def test_one_short_sentence_is_one_cue_from_its_start_to_its_end() -> None:
    sentence = timed(0, "Hello there, world.", 0.0)
    (cue,) = cues([sentence])
    assert (cue.number, cue.start, cue.end, cue.text) == (1, 0.0, sentence.end, "Hello there, world.")
    assert to_srt([cue]) == "1\n00:00:00,000 --> 00:00:00,900\nHello there, world.\n\n"


def test_vtt_has_header_and_word_tags_after_the_first_word() -> None:
    document = to_vtt(cues([timed(0, "Hello there, world.", 1.0, 0.25)]))
    assert document == (
        "WEBVTT\n\n1\n00:00:01.000 --> 00:00:01.750\n"
        "<c>Hello</c> <00:00:01.250><c>there,</c> <00:00:01.500><c>world.</c>\n\n"
    )
    assert to_vtt(cues([timed(0, "Hello there.", 1.0)]), word_tags=False) == (
        "WEBVTT\n\n1\n00:00:01.000 --> 00:00:01.600\nHello there.\n\n"
    )


def test_time_formats_including_hours_and_rounding() -> None:
    assert srt_time(0) == "00:00:00,000"
    assert vtt_time(1.25) == "00:00:01.250"
    assert srt_time(3723.4567) == "01:02:03,457"
    assert vtt_time(3723.4567) == "01:02:03.457"
    assert vtt_time(59.9996) == "00:01:00.000"
    assert srt_time(100 * 3600 + 1) == "100:00:01,000"
    assert vtt_time(-0.001) == "00:00:00.000"
    (cue,) = cues([timed(0, "Late in the day.", 2 * 3600 + 5.5)])
    assert "02:00:05,500 --> 02:00:06,700" in to_srt([cue])
    assert "02:00:05.500 --> 02:00:06.700" in to_vtt([cue])


def test_lines_wrap_at_42_characters_two_to_a_cue() -> None:
    sentence = timed(0, LONG, 0.0)
    result = cues([sentence])
    assert len(result) > 1
    for cue in result:
        assert 1 <= len(cue.lines) <= captions.MAX_LINES
        assert all(len(line) <= captions.LINE_CHARS for line in cue.text.split("\n"))
    # Nothing lost, nothing reordered: the cues' words are the sentence's.
    assert " ".join(cue.text.replace("\n", " ") for cue in result) == LONG


def test_a_two_line_cue_is_balanced() -> None:
    text = "The weather today is sunny with a light breeze from the west."
    (cue,) = cues([timed(0, text, 0.0)])
    first, second = cue.text.split("\n")
    assert abs(len(first) - len(second)) <= 10


def test_a_long_sentence_is_split_by_its_word_timings() -> None:
    sentence = timed(3, LONG, 10.0, 0.25)
    result = cues([sentence])
    starts = {word.word: word.start for word in sentence.words}
    assert result[0].start == sentence.start and result[-1].end == sentence.end
    for cue, following in itertools.pairwise(result):
        # Contiguous, and each boundary is the start of the next cue's first word.
        assert cue.end == following.start
        assert following.start == starts[following.lines[0][0].text.strip(".,")]
    for cue in result:
        words = [word for line in cue.lines for word in line]
        assert all(cue.start <= word.start <= word.end <= cue.end for word in words)
        assert cue.sentence == 3


def test_a_sentence_without_word_timings_is_split_by_character_position() -> None:
    sentence = timed(0, LONG, 0.0, words=False)
    result = cues([sentence])
    assert len(result) > 1
    assert result[0].start == 0.0 and result[-1].end == sentence.end
    assert all(a.end == b.start and a.start < a.end for a, b in itertools.pairwise(result))
    document = to_vtt(result)
    assert "<00:" not in document  # no engine timings, no word tags
    parse_vtt(document)


def test_engine_words_that_are_not_in_the_text_are_captioned_as_spoken() -> None:
    words = (WordTiming("three", 0.0, 0.4), WordTiming("thirty", 0.4, 0.9))
    sentence = SentenceTimings(0, "3:30", 0.0, 1.0, words)
    (cue,) = cues([sentence])
    assert cue.text == "three thirty"
    assert to_vtt([cue]).endswith("<c>three</c> <00:00:00.400><c>thirty</c>\n\n")


def test_vtt_escapes_markup_characters() -> None:
    sentence = SentenceTimings(0, "A <b> & c --> d", 0.0, 1.0, (WordTiming("A", 0.0, 0.2), WordTiming("c", 0.5, 0.7)))
    document = to_vtt(cues([sentence]))
    assert "&lt;b&gt;" in document and "&amp;" in document and "--&gt;" in document
    assert "<b>" not in document and document.count(" --> ") == 1
    parse_vtt(document)
    assert to_vtt(cues([sentence]), word_tags=False).endswith("A &lt;b&gt; &amp; c --&gt; d\n\n")
    assert "A <b> & c --> d" in to_srt(cues([sentence]))


def test_whole_vtt_document_parses_with_numbering_and_non_decreasing_times() -> None:
    sentences = [timed(0, "First one.", 0.0), timed(1, LONG, 0.6), timed(2, "And the last!", 30.0)]
    parsed = parse_vtt(to_vtt(cues(sentences)))
    assert [number for number, *_ in parsed] == list(range(1, len(parsed) + 1))
    starts = [start for _, start, _, _ in parsed]
    assert starts == sorted(starts)
    # The pause between sentence 1 and 2 (an SSML break) is a gap between cues.
    assert parsed[-1][1] == 30.0 and parsed[-2][2] < 30.0


def test_srt_document_shape() -> None:
    document = to_srt(cues([timed(0, "First one.", 0.0), timed(1, LONG, 0.6)]))
    blocks = document.split("\n\n")
    assert blocks[-1] == ""
    srt = re.compile(r"^\d+\n\d{2,}:\d{2}:\d{2},\d{3} --> \d{2,}:\d{2}:\d{2},\d{3}\n[^\n]{1,42}(?:\n[^\n]{1,42})?$")
    for number, block in enumerate(blocks[:-1], start=1):
        assert srt.match(block), block
        assert block.startswith(f"{number}\n")


def test_streamed_sentence_cues_number_on_and_join_into_the_whole_document() -> None:
    sentences = [timed(0, "First one.", 0.0), timed(1, LONG, 0.6), timed(2, "And the last!", 30.0)]
    sent = 0
    vtt_parts, srt_parts = [], []
    for position, sentence in enumerate(sentences):
        part = sentence_cues(sentence, sent + 1)
        assert [cue.number for cue in part] == list(range(sent + 1, sent + 1 + len(part)))
        sent += len(part)
        vtt_parts.append(captions.render("vtt", part, header=position == 0))
        srt_parts.append(captions.render("srt", part))
    whole = cues(sentences)
    assert "".join(vtt_parts) == to_vtt(whole)
    assert "".join(srt_parts) == to_srt(whole)
    assert to_vtt(whole[:2]) + to_vtt(whole[2:], header=False) == to_vtt(whole)


def test_edge_cases() -> None:
    assert cues([]) == []
    assert to_vtt([]) == "WEBVTT\n\n"
    assert to_srt([]) == ""
    assert sentence_cues(SentenceTimings(0, "   ", 0.0, 0.5, ()), 7) == []
    # A word longer than a line gets a line of its own.
    url = "https://example.com/" + "a" * 60
    result = sentence_cues(timed(0, f"See {url} now", 0.0), 5)
    assert [cue.number for cue in result] == [5, 6]
    assert result[0].text.split("\n") == ["See", url] and result[1].text == "now"
    with pytest.raises(ValueError, match="unknown caption format"):
        captions.render("ass", [])


def test_cue_is_a_value() -> None:
    (cue,) = cues([timed(0, "Hi.", 0.0)])
    assert isinstance(cue, Cue) and cue == cues([timed(0, "Hi.", 0.0)])[0]
