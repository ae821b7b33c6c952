"""Word timings in the client's words after the lexicon changed what was spoken.

The lexicon replaces "nginx" with "engine x" before synthesis, so the
engine times "engine" and "x". A client following along (captions, the
playground's highlighting) wants "nginx" from the first one's start to the
last one's end. :class:`Respeller` walks the timed words of a stream in
order against the replacements (also in text order) and merges each run of
words that spells a replacement into the original word. Engines do not time
words exactly as written (punctuation, expanded numbers), so words compare
by their letters and digits only, and a replacement the engine's words do
not spell is passed by unchanged rather than guessed at.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import attrs

from tts_trio.audio.formats import WordTiming

_WORD = re.compile(r"\w+")


def _tokens(text: str) -> tuple[str, ...]:
    return tuple(token.casefold() for token in _WORD.findall(text))


@attrs.frozen
class Respelling:
    """``spoken`` (what the engine was given) stands for ``original`` (what the client wrote)."""

    spoken: tuple[str, ...]
    original: str

    @classmethod
    def of(cls, spoken: str, original: str) -> Respelling | None:
        tokens = _tokens(spoken)
        return cls(tokens, original) if tokens else None


class Respeller:
    """Merges timed words back into original words, sentence by sentence, in stream order."""

    def __init__(self, respellings: Sequence[Respelling]) -> None:
        self._pending = list(respellings)

    def __call__(self, words: Sequence[WordTiming]) -> tuple[WordTiming, ...]:
        if not self._pending:
            return tuple(words)
        out: list[WordTiming] = []
        i = 0
        while i < len(words):
            merged = self._match(words, i)
            if merged is None:
                out.append(words[i])
                i += 1
            else:
                word, length = merged
                out.append(word)
                i += length
        return tuple(out)

    def _match(self, words: Sequence[WordTiming], i: int) -> tuple[WordTiming, int] | None:
        """The next replacement spelled by the words from ``i``, as one word; None when they do not."""
        # Only the next few replacements are candidates: one the engine skipped is passed by.
        for ahead, respelling in enumerate(self._pending[:3]):
            run: list[str] = []
            length = 0
            while len(run) < len(respelling.spoken) and i + length < len(words):
                run.extend(_tokens(words[i + length].word))
                length += 1
            if tuple(run) == respelling.spoken:
                del self._pending[: ahead + 1]
                first, last = words[i], words[i + length - 1]
                return WordTiming(respelling.original, first.start, last.end), length
        return None
