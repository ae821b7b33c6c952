"""Captions (SRT, WebVTT) from the timings the audio was made with.

One cue per sentence (:class:`~tts_trio.synthesis.pipeline.SentenceTimings`),
its text wrapped at :data:`LINE_CHARS` characters on at most
:data:`MAX_LINES` lines; a longer sentence is split into several cues at
word boundaries, each cue's time range that of its words. The cue text is
the sentence as written (punctuation included), whitespace-separated; the
engine's word timings are placed on it by finding each reported word in the
sentence's text, in order. Words the engine did not report (or a sentence
without word timings at all) get times interpolated by character position
between their neighbours, so a long sentence can still be split; only the
words the engine timed get a WebVTT ``<hh:mm:ss.ttt>`` tag.

A sentence's cues cover it without gaps: the first starts at the sentence's
start, the last ends at its end, and each other boundary is the start of the
cue's first word. A pause between sentences (an SSML ``<break>``) is simply
a gap between their cues: captions follow the timings, nothing else.

Everything here is pure: :func:`cues` for a whole text, :func:`sentence_cues`
for one sentence of a stream (numbering continues from ``first``), then
:func:`to_srt` or :func:`to_vtt`. The blocks of consecutive calls join into
one document: ``to_vtt(a + b) == to_vtt(a) + to_vtt(b, header=False)``.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from tts_trio.synthesis.params import CAPTION_FORMATS
from tts_trio.synthesis.pipeline import SentenceTimings

#: Characters a caption line holds at most (a word longer than this gets a line of its own).
LINE_CHARS = 42
#: Lines a cue holds at most.
MAX_LINES = 2
#: The caption formats a request may ask for.
FORMATS = CAPTION_FORMATS

_TOKEN = re.compile(r"\S+")
_VTT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


@attrs.frozen
class CaptionWord:
    """One whitespace-separated piece of a sentence's text and when it is spoken (seconds, stream time)."""

    text: str
    start: float
    end: float
    #: Whether ``start`` is the engine's own timing (else interpolated): only those get VTT tags.
    timed: bool


@attrs.frozen
class Cue:
    """One caption: its number (from 1, across the whole stream), time range and lines of words."""

    number: int
    start: float
    end: float
    lines: tuple[tuple[CaptionWord, ...], ...]
    #: The sentence it belongs to (``SentenceTimings.index``).
    sentence: int

    @property
    def text(self) -> str:
        return "\n".join(" ".join(word.text for word in line) for line in self.lines)


def cues(timings: Iterable[SentenceTimings]) -> list[Cue]:
    """The cues of a whole text, numbered from 1."""
    result: list[Cue] = []
    for sentence in timings:
        result.extend(sentence_cues(sentence, len(result) + 1))
    return result


def sentence_cues(timings: SentenceTimings, first: int) -> list[Cue]:
    """The cues of one sentence, numbered from ``first`` (a stream's cue count so far, plus one)."""
    words = _words(timings)
    if not words:
        return []
    groups = _cue_lines(words)
    result = []
    for position, lines in enumerate(groups):
        start = timings.start if position == 0 else lines[0][0].start
        end = timings.end if position == len(groups) - 1 else groups[position + 1][0][0].start
        result.append(Cue(first + position, start, max(start, end), lines, timings.index))
    return result


def to_srt(cues: Sequence[Cue]) -> str:
    """SubRip: numbered blocks, ``HH:MM:SS,mmm --> HH:MM:SS,mmm``, the lines, a blank line."""
    return "".join(f"{cue.number}\n{srt_time(cue.start)} --> {srt_time(cue.end)}\n{cue.text}\n\n" for cue in cues)


def to_vtt(cues: Sequence[Cue], *, word_tags: bool = True, header: bool = True) -> str:
    """WebVTT: the ``WEBVTT`` header (unless ``header`` is False), then numbered cues.

    ``&``, ``<`` and ``>`` in the text are escaped. With ``word_tags`` every
    timed word after a cue's first is preceded by its start,
    ``<00:00:01.250><c>word</c>`` (the first word's start is the cue's).
    """
    blocks = "".join(
        f"{cue.number}\n{vtt_time(cue.start)} --> {vtt_time(cue.end)}\n{_vtt_text(cue, word_tags)}\n\n" for cue in cues
    )
    return ("WEBVTT\n\n" + blocks) if header else blocks


def render(kind: str, cues: Sequence[Cue], *, header: bool = True) -> str:
    """``to_srt`` or ``to_vtt`` by name (``srt``, ``vtt``)."""
    if kind == "srt":
        return to_srt(cues)
    if kind == "vtt":
        return to_vtt(cues, header=header)
    raise ValueError(f"unknown caption format {kind!r}")


def srt_time(seconds: float) -> str:
    hours, minutes, secs, millis = _clock(seconds)
    return f"{hours:02d}:{minutes:02d}:{secs:02d},{millis:03d}"


def vtt_time(seconds: float) -> str:
    hours, minutes, secs, millis = _clock(seconds)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def _clock(seconds: float) -> tuple[int, int, int, int]:
    total = max(0, round(seconds * 1000))
    secs, millis = divmod(total, 1000)
    minutes, secs = divmod(secs, 60)
    hours, minutes = divmod(minutes, 60)
    return hours, minutes, secs, millis


def _vtt_text(cue: Cue, word_tags: bool) -> str:
    if not word_tags:
        return cue.text.translate(_VTT_ESCAPES)
    lines = []
    last = cue.start
    for line in cue.lines:
        parts = []
        for word in line:
            text = word.text.translate(_VTT_ESCAPES)
            # A timestamp tag must lie strictly inside the cue and after the one before it.
            if word.timed and last < word.start < cue.end and vtt_time(word.start) != vtt_time(last):
                parts.append(f"<{vtt_time(word.start)}><c>{text}</c>")
                last = word.start
            else:
                parts.append(f"<c>{text}</c>")
        lines.append(" ".join(parts))
    return "\n".join(lines)


def _words(timings: SentenceTimings) -> list[CaptionWord]:
    """The sentence's text as words with times: the engine's where it reported them, else interpolated."""
    text = timings.text
    spans = [(match.start(), match.group()) for match in _TOKEN.finditer(text)]
    if not spans:
        return []
    offsets = [offset for offset, _ in spans]
    starts: list[float | None] = [None] * len(spans)
    ends: list[float | None] = [None] * len(spans)
    cursor = 0
    for word in timings.words:
        needle = word.word.strip()
        found = text.find(needle, cursor) if needle else -1
        if found < 0:
            continue
        cursor = found + len(needle)
        index = bisect.bisect_right(offsets, found) - 1
        if starts[index] is None:
            starts[index] = word.start
        ends[index] = word.end
    if timings.words and all(start is None for start in starts):
        # The engine's words are not the text's (normalized): caption them as the engine said them.
        return _engine_words(timings)
    # Anchors (character offset, time) for interpolation: the sentence's ends and every timed word.
    anchors = [(0, timings.start)]
    anchors += [(offsets[i], start) for i, start in enumerate(starts) if start is not None]
    anchors.append((len(text), timings.end))
    result: list[CaptionWord] = []
    previous = timings.start
    for i, (offset, token) in enumerate(spans):
        timed = starts[i] is not None
        start = starts[i] if timed else _interpolate(anchors, offset)
        assert start is not None
        start = min(max(start, previous, timings.start), timings.end)
        previous = start
        result.append(CaptionWord(token, start, start, timed))
    return _with_ends(result, ends, timings.end)


def _engine_words(timings: SentenceTimings) -> list[CaptionWord]:
    result: list[CaptionWord] = []
    previous = timings.start
    for word in timings.words:
        for token in word.word.split():
            start = min(max(word.start, previous, timings.start), timings.end)
            previous = start
            result.append(CaptionWord(token, start, start, True))
    return _with_ends(result, [None] * len(result), timings.end)


def _with_ends(words: list[CaptionWord], ends: Sequence[float | None], last: float) -> list[CaptionWord]:
    """Each word ends where the engine said, else where the next one starts (the last: the sentence's end)."""
    result = []
    for i, word in enumerate(words):
        following = words[i + 1].start if i + 1 < len(words) else last
        end = ends[i]
        end = following if end is None else min(max(end, word.start), last)
        result.append(attrs.evolve(word, end=end))
    return result


def _interpolate(anchors: Sequence[tuple[int, float]], offset: int) -> float:
    """The time at a character offset, linear between the anchors around it."""
    after = next(i for i, (position, _) in enumerate(anchors) if position >= offset or i == len(anchors) - 1)
    if after == 0:
        return anchors[0][1]
    (left, left_time), (right, right_time) = anchors[after - 1], anchors[after]
    if right <= left:
        return right_time
    share = (offset - left) / (right - left)
    return left_time + share * (right_time - left_time)


def _cue_lines(words: Sequence[CaptionWord]) -> list[tuple[tuple[CaptionWord, ...], ...]]:
    """Lines of at most LINE_CHARS (greedy), MAX_LINES to a cue, each cue's lines balanced."""
    lines: list[list[CaptionWord]] = []
    width = 0
    for word in words:
        if lines and width + 1 + len(word.text) <= LINE_CHARS:
            lines[-1].append(word)
            width += 1 + len(word.text)
        else:
            lines.append([word])
            width = len(word.text)
    groups = []
    for start in range(0, len(lines), MAX_LINES):
        group = [word for line in lines[start : start + MAX_LINES] for word in line]
        groups.append(_balanced(group) or tuple(tuple(line) for line in lines[start : start + MAX_LINES]))
    return groups


def _balanced(words: Sequence[CaptionWord]) -> tuple[tuple[CaptionWord, ...], ...] | None:
    """One line if it fits, else the two-line split with the shortest longer line; None if none fits."""
    lengths = [len(word.text) for word in words]

    def width(part: Sequence[int]) -> int:
        return sum(part) + max(0, len(part) - 1)

    if width(lengths) <= LINE_CHARS:
        return (tuple(words),)
    best: tuple[int, int] | None = None
    for cut in range(1, len(words)):
        longer = max(width(lengths[:cut]), width(lengths[cut:]))
        if longer <= LINE_CHARS and (best is None or longer < best[0]):
            best = (longer, cut)
    if best is None:
        return None
    cut = best[1]
    return (tuple(words[:cut]), tuple(words[cut:]))


class SentenceCaptions:
    """A stream's captions sentence by sentence (SSE ``captions`` events, WebSocket ``timings`` messages).

    It numbers the cues across the stream and writes the WebVTT header
    once, with the first sentence, so it belongs to one stream.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._cues_sent = 0
        self._sentences_sent = 0

    def for_sentence(self, timings: SentenceTimings) -> dict[str, Any]:
        """``{"sentence", "format", "text", "cues"}`` for one sentence's timings."""
        cues = sentence_cues(timings, self._cues_sent + 1)
        text = render(self.kind, cues, header=self._sentences_sent == 0)
        self._cues_sent += len(cues)
        self._sentences_sent += 1
        return {
            "sentence": timings.index,
            "format": self.kind,
            "text": text,
            "cues": [{"number": cue.number, "start": cue.start, "end": cue.end, "text": cue.text} for cue in cues],
        }
