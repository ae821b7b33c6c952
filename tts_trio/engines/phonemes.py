"""Phonemes inside a text: how the lexicon and SSML hand IPA to an engine that can speak it.

A lexicon entry ``{"phonemes": "tʃɪkən"}`` and SSML's ``<phoneme ph="...">``
put IPA into the text the engine gets, as a *marked span*:
``MARK_OPEN + ipa + MARK_SPLIT + written + MARK_CLOSE``. The three marks are
Unicode private-use characters that no client text can carry (request text
loses them in :func:`~tts_trio.synthesis.params.clean_text`), so a client
can never smuggle phonemes, or an engine's own phoneme syntax (Piper's and
espeak-ng's ``[[...]]``), past the server: only the server marks spans.

An engine that takes IPA (``LoadedEngine.takes_phonemes``: Piper, whose
model input *is* IPA) turns each span into its own phoneme input
(:func:`parts`); for any other engine the service speaks each span's
written text instead (:func:`written` does that to a whole text) and says so
in a warning.
"""

from __future__ import annotations

import re

MARK_OPEN = "\ue000"
MARK_SPLIT = "\ue001"
MARK_CLOSE = "\ue002"
MARKS = MARK_OPEN + MARK_SPLIT + MARK_CLOSE

_SPAN = re.compile(f"{MARK_OPEN}([^{MARKS}]*){MARK_SPLIT}([^{MARKS}]*){MARK_CLOSE}")
_UNMARK = str.maketrans(dict.fromkeys(MARKS, " "))


def mark(ipa: str, written: str = "") -> str:
    """A marked span: speak ``ipa``; ``written`` is what an engine without IPA says instead."""
    return f"{MARK_OPEN}{ipa.translate(_UNMARK).strip()}{MARK_SPLIT}{written.translate(_UNMARK)}{MARK_CLOSE}"


def unmarked(text: str) -> str:
    """``text`` with any mark character a client sent turned into a space (nothing of it is a span)."""
    return text.translate(_UNMARK)


def has_spans(text: str) -> bool:
    return MARK_OPEN in text


def parts(text: str) -> list[tuple[str, bool]]:
    """``text`` cut into ``(text, False)`` and ``(ipa, True)`` parts, in order; stray marks become spaces."""
    found: list[tuple[str, bool]] = []
    position = 0
    for span in _SPAN.finditer(text):
        if span.start() > position:
            found.append((unmarked(text[position : span.start()]), False))
        found.append((span.group(1), True))
        position = span.end()
    if position < len(text):
        found.append((unmarked(text[position:]), False))
    return found


def span_positions(text: str) -> list[tuple[str, str, int, int]]:
    """Each marked span's ``(ipa, written, start, end)``, in order."""
    return [(span.group(1), span.group(2), span.start(), span.end()) for span in _SPAN.finditer(text)]


def written(text: str) -> str:
    """``text`` with each span replaced by its written text (for an engine that takes no IPA)."""
    return unmarked(_SPAN.sub(lambda span: span.group(2), text))


def as_ipa(text: str) -> str:
    """``text`` with each span replaced by its IPA: what the words of the text are once spoken."""
    return unmarked(_SPAN.sub(lambda span: span.group(1), text))
