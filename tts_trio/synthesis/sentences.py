"""Split text into sentences lazily, with stream2sentence's rule-based rules.

stream2sentence's character-streaming splitter costs ~2 ms per sentence,
which on a long text would take the event loop for a quarter of a second.
Its rule-based boundary detector (abbreviations, decimals, initials, URLs)
is cheap when scanned over text that is already complete, so this module
walks the text once with that detector and yields each sentence as soon as
its end is found: the first sentence of a 9,000-character text is ready as
fast as the first sentence of a short one. Sentences longer than
``max_chars`` are cut at the last comma, semicolon or space before the limit,
so one sentence never holds a synthesis slot for long.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from stream2sentence.quick_yield_boundary import SPLIT, get_boundary_detector

_TERMINATORS = frozenset(".?!。！？؟।۔\n")
_CLOSING = "\"')]}”’»›」』）】〕》〉"
_SOFT_BREAKS = ",;:—–"
#: How far past a terminator the detector may look (numbers, URLs, initials).
_LOOKAHEAD = 64


def load_rules() -> None:
    """Read stream2sentence's language tables now, at start-up, instead of in the first request.

    The detector reads them from a JSON file on first use (about 3,000
    objects) and keeps them for the life of the process. Read during a
    connection peak, they would sit in memory the peak allocated and keep
    it from being given back when the peak is over (:mod:`tts_trio.server.memory`).
    """
    get_boundary_detector("en")


def iter_sentences(text: str, *, max_chars: int = 400, language: str = "en") -> Iterator[str]:
    """Yield the sentences of ``text`` in order, each stripped and non-empty."""
    for start, end in _spans(text, max_chars=max_chars, language=language):
        yield from _non_empty(text[start:end])


def _spans(text: str, *, max_chars: int, language: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each sentence, the last one running to the end of ``text``."""
    detector = get_boundary_detector(language)
    start = 0
    index = 0
    length = len(text)
    while index < length:
        if index - start >= max_chars:
            cut = _cut_point(text, start, index)
            yield start, cut
            start = index = cut
            continue
        char = text[index]
        if char not in _TERMINATORS:
            index += 1
            continue
        segment = text[start : index + _LOOKAHEAD]
        next_char = text[index + 1] if index + 1 < length else None
        if char != "\n" and detector.classify(segment, index - start, next_char) != SPLIT:
            index += 1
            continue
        end = index + 1
        while end < length and text[end] in _TERMINATORS and text[end] != "\n":
            end += 1
        while end < length and text[end] in _CLOSING:
            end += 1
        yield start, end
        start = index = end
    if start < length:
        yield start, length


class SentenceAssembler:
    """Sentences from text that arrives in pieces (an LLM writing), as soon as each is certain.

    A sentence is certain once text follows its end: "Dr." or "3." at the
    very end of what has arrived may still continue. :meth:`flush` gives up
    what is held, for when the writer pauses or is done.
    """

    def __init__(self, *, max_chars: int = 400, language: str = "en") -> None:
        self._buffer = ""
        self._max_chars = max_chars
        self._language = language

    @property
    def pending(self) -> str:
        return self._buffer

    def feed(self, text: str) -> list[str]:
        self._buffer += text
        spans = list(_spans(self._buffer, max_chars=self._max_chars, language=self._language))
        if len(spans) < 2:
            return []
        keep_from = spans[-1][0]
        done = [sentence for start, end in spans[:-1] for sentence in _non_empty(self._buffer[start:end])]
        self._buffer = self._buffer[keep_from:]
        return done

    def flush(self) -> list[str]:
        text, self._buffer = self._buffer, ""
        return list(iter_sentences(text, max_chars=self._max_chars, language=self._language))


class SsmlDocuments:
    """Whole SSML documents from text that arrives in pieces: each one once its ``</speak>`` has come.

    An SSML document only means something whole (a ``<break/>`` or a
    ``<prosody>`` may come at its end), so a text-in context that speaks
    SSML speaks it document by document: a voice agent sends one
    ``<speak>...</speak>`` per utterance, in as many appends as it likes.
    """

    def __init__(self) -> None:
        self._buffer = ""

    def feed(self, text: str) -> list[str]:
        self._buffer += text
        done = []
        while (end := _SPEAK_END.search(self._buffer)) is not None:
            done.append(self._buffer[: end.end()])
            self._buffer = self._buffer[end.end() :]
        return done

    def flush(self) -> str:
        """What is held (no ``</speak>`` yet); blank when nothing is."""
        text, self._buffer = self._buffer, ""
        return text


_SPEAK_END = re.compile(r"</speak\s*>")


def _cut_point(text: str, start: int, limit: int) -> int:
    """Where to cut an over-long sentence: after a soft break, else a space, else hard."""
    window = text[start:limit]
    for marks in (_SOFT_BREAKS, " \t"):
        best = max(window.rfind(mark) for mark in marks)
        if best > len(window) // 2:
            return start + best + 1
    return limit


def _non_empty(sentence: str) -> Iterator[str]:
    sentence = sentence.strip()
    if sentence and any(char.isalnum() for char in sentence):
        yield sentence
